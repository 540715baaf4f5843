//! `bench-agent`: see `bench_agent::cli` (the whole program lives in the library).

fn main() -> std::process::ExitCode {
    bench_agent::cli::main()
}
