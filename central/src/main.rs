//! `bench-central`: see `bench_central::cli` (the whole program lives in the library).

fn main() -> std::process::ExitCode {
    bench_central::cli::main()
}
