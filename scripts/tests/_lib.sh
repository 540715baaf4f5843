# shellcheck shell=bash
# Helpers for the script tests (sourced). Each test gets its own run/, logs/, config/ and results/
# under a temp dir and free ports, so it can never touch a user's running agent, central or engine,
# and everything it started is stopped on exit (PIDs from its own PID files only).
set -euo pipefail

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT_DIR"
T_TMP="$(mktemp -d "${TMPDIR:-/tmp}/bench-script-test.XXXXXX")"
export BENCH_RUN_DIR="$T_TMP/run" BENCH_LOG_DIR="$T_TMP/logs" BENCH_CONFIG_DIR="$T_TMP/config"
export BENCH_RESULTS_DIR="$T_TMP/results"
export BENCH_BIN_DIR="${BENCH_BIN_DIR:-${CARGO_TARGET_DIR:-$ROOT_DIR/target}/debug}"
mkdir -p "$BENCH_RUN_DIR" "$BENCH_LOG_DIR" "$BENCH_CONFIG_DIR" "$BENCH_RESULTS_DIR"
# Never let a developer's environment pick the ports or the engine of a test.
unset AGENT_HOST AGENT_PORT CENTRAL_HOST CENTRAL_PORT OLLAMA_HOST OLLAMA_PORT BENCH_ENGINE_PORT

T_FAILS=0
T_EXTRA_PIDS=()

t_cleanup() {
  local f pid
  for f in "$BENCH_RUN_DIR"/*.pid; do
    [[ -f "$f" ]] || continue
    pid="$(head -n1 "$f" | tr -dc '0-9')"
    [[ -n "$pid" ]] && kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${T_EXTRA_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  if ((T_FAILS)) || [[ "${KEEP_TEST_TMP:-}" == 1 ]]; then
    echo "  (test files kept in $T_TMP)"
    for f in "$BENCH_LOG_DIR"/*.log; do
      [[ -f "$f" ]] || continue
      echo "  ---- tail of $f"
      tail -n 15 "$f" | sed 's/^/  | /'
    done
  else
    rm -rf "$T_TMP"
  fi
}
trap t_cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

fail() {
  echo "  FAIL: $*" >&2
  T_FAILS=$((T_FAILS + 1))
  exit 1
}

pass() {
  echo "  ok: $*"
}

# expect_contains TEXT NEEDLE WHAT
expect_contains() {
  [[ "$1" == *"$2"* ]] || fail "$3: expected to contain '$2', got: $1"
}

# expect_rc EXPECTED CMD... : run CMD, capture stdout+stderr in $OUT, check the exit code.
expect_rc() {
  local want="$1"
  shift
  local rc=0
  OUT="$("$@" 2>&1)" || rc=$?
  [[ "$rc" == "$want" ]] || fail "'$*' exited $rc (want $want): $OUT"
}

pid_alive() {
  kill -0 "$1" 2>/dev/null
}

# wait_gone PID: the process must exit within 15 s.
wait_gone() {
  local i
  for i in $(seq 150); do
    pid_alive "$1" || return 0
    sleep 0.1
  done
  return 1
}

# ensure_engine: sets ENGINE_URL to the shared test engine (scripts/test exports
# BENCH_TEST_ENGINE_URL), else to one started for this test. Call it directly, not in $(...).
ensure_engine() {
  if [[ -n "${BENCH_TEST_ENGINE_URL:-}" ]]; then
    ENGINE_URL="$BENCH_TEST_ENGINE_URL"
    return 0
  fi
  local out="$T_TMP/engine.out" fifo="$T_TMP/engine.stdin"
  mkfifo "$fifo"
  scripts/engine serve --port 0 <"$fifo" >"$out" 2>"$T_TMP/engine.err" &
  T_EXTRA_PIDS+=($!)
  exec 9>"$fifo"
  local i
  for i in $(seq 600); do
    grep -q '^LISTENING ' "$out" 2>/dev/null && break
    sleep 0.1
  done
  local line
  line="$(grep -m1 '^LISTENING ' "$out")" || fail "local engine did not start: $(cat "$T_TMP/engine.err")"
  BENCH_TEST_ENGINE_URL="${line#LISTENING }"
  export BENCH_TEST_ENGINE_URL
  ENGINE_URL="$BENCH_TEST_ENGINE_URL"
}
