#!/usr/bin/env bash
# How the scripts find and build their binaries (scripts/lib/service.sh build_bins), with a stand-in
# cargo on PATH that records each invocation and writes the binaries it was asked for: the
# quickstart's two binaries come from one invocation in the BENCH_PROFILE profile (quickstart by
# default), up-to-date binaries are not rebuilt, stale ones are, and BENCH_BIN_DIR wins.
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

fake="$T_TMP/fakebin"
calls="$T_TMP/cargo.calls"
target="$T_TMP/target"
mkdir -p "$fake"
cat >"$fake/cargo" <<'SH'
#!/usr/bin/env bash
echo "$*" >>"$FAKE_CARGO_CALLS"
profile="" pkgs=()
while (($#)); do
  case "$1" in
    --profile) profile="$2"; shift ;;
    -p) pkgs+=("$2"); shift ;;
  esac
  shift
done
case "$profile" in dev) dir=debug ;; *) dir="$profile" ;; esac
mkdir -p "$CARGO_TARGET_DIR/$dir"
for p in "${pkgs[@]}"; do printf '#!/bin/sh\n' >"$CARGO_TARGET_DIR/$dir/$p"; chmod +x "$CARGO_TARGET_DIR/$dir/$p"; done
SH
chmod +x "$fake/cargo"

# build_bins PROFILE|"" PKG...: the directory build_bins answers, as scripts/quickstart calls it.
build_bins_as() {
  local profile="$1"
  shift
  env -u BENCH_BIN_DIR ${profile:+BENCH_PROFILE="$profile"} CARGO_TARGET_DIR="$target" \
    FAKE_CARGO_CALLS="$calls" PATH="$fake:$PATH" \
    bash -c 'source scripts/lib/common.sh; source scripts/lib/service.sh; build_bins "$@"' _ "$@" 2>/dev/null
}
ncalls() { if [[ -f "$calls" ]]; then wc -l <"$calls"; else echo 0; fi; }

dir="$(build_bins_as "" bench-agent bench-central)"
[[ "$dir" == "$target/quickstart" ]] || fail "default profile: want $target/quickstart, got '$dir'"
[[ "$(ncalls)" == 1 ]] || fail "want one cargo invocation for both binaries, got: $(cat "$calls")"
[[ "$(cat "$calls")" == "build --profile quickstart -p bench-agent -p bench-central" ]] ||
  fail "unexpected cargo invocation: $(cat "$calls")"
pass "both binaries from one 'cargo build --profile quickstart' invocation"

dir="$(build_bins_as "" bench-agent bench-central)"
[[ "$dir" == "$target/quickstart" && "$(ncalls)" == 1 ]] || fail "up-to-date binaries were rebuilt: $(cat "$calls")"
touch -d '2000-01-01' "$target/quickstart/bench-central"
build_bins_as "" bench-agent bench-central >/dev/null
[[ "$(ncalls)" == 2 && "$(tail -n1 "$calls")" == "build --profile quickstart -p bench-agent -p bench-central" ]] ||
  fail "a binary older than the sources was not rebuilt (with its sibling, in one invocation): $(cat "$calls")"
pass "up-to-date binaries are reused; one older than the sources is rebuilt"

dir="$(build_bins_as dist bench-agent bench-central)"
[[ "$dir" == "$target/dist" && "$(tail -n1 "$calls")" == "build --profile dist -p bench-agent -p bench-central" ]] ||
  fail "BENCH_PROFILE=dist: got '$dir' after $(tail -n1 "$calls")"
dir="$(build_bins_as dev bench-agent)"
[[ "$dir" == "$target/debug" && "$(tail -n1 "$calls")" == "build --profile dev -p bench-agent" ]] ||
  fail "BENCH_PROFILE=dev: got '$dir' after $(tail -n1 "$calls")"
pass "BENCH_PROFILE picks the profile and its directory (dist → dist/, dev → debug/)"

before="$(ncalls)"
dir="$(BENCH_BIN_DIR="$target/dist" CARGO_TARGET_DIR="$target" FAKE_CARGO_CALLS="$calls" PATH="$fake:$PATH" \
  bash -c 'source scripts/lib/common.sh; source scripts/lib/service.sh; build_bins bench-agent bench-central')"
[[ "$dir" == "$target/dist" && "$(ncalls)" == "$before" ]] || fail "BENCH_BIN_DIR did not win: '$dir'"
pass "BENCH_BIN_DIR is used as is, without cargo"
