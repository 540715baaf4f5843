#!/usr/bin/env bash
# scripts/engine: daemon start on a chosen port, status, refusal of a second copy, stale PID file
# cleanup, stop; serve exits when its stdin closes.
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

scripts/engine install >/dev/null
port="$(free_port)"
expect_rc 0 env BENCH_ENGINE_PORT="$port" scripts/engine start
expect_contains "$OUT" "OpenAI-compatible URL: http://127.0.0.1:$port/v1" "engine start"
expect_contains "$OUT" "model: smollm2:135m" "engine start"
[[ -f "$BENCH_RUN_DIR/engine.pid" ]] || fail "no run/engine.pid"
pid="$(head -n1 "$BENCH_RUN_DIR/engine.pid")"
models="$(curl -fsS "http://127.0.0.1:$port/v1/models")"
expect_contains "$models" '"id":"smollm2:135m"' "/v1/models"
pass "engine daemon serves smollm2:135m on port $port (PID $pid)"

expect_rc 0 scripts/engine status
expect_contains "$OUT" "PID: $pid" "engine status"
expect_contains "$OUT" "health: ok" "engine status"
expect_rc 1 env BENCH_ENGINE_PORT="$(free_port)" scripts/engine start
expect_contains "$OUT" "already running (PID $pid" "second engine start"
pass "status and second-copy refusal"

expect_rc 0 scripts/engine stop
expect_contains "$OUT" "stopped (PID $pid)" "engine stop"
wait_gone "$pid" || fail "engine PID $pid still alive after stop"
[[ ! -f "$BENCH_RUN_DIR/engine.pid" ]] || fail "PID file left after stop"
pass "stop ends the process and removes the PID file"

# A stale PID file (process gone) is detected and removed, and start proceeds.
printf '999999\nhttp://127.0.0.1:1\n' >"$BENCH_RUN_DIR/engine.pid"
expect_rc 3 scripts/engine status
expect_contains "$OUT" "removing stale PID file" "status with stale PID file"
[[ ! -f "$BENCH_RUN_DIR/engine.pid" ]] || fail "stale PID file not removed"
pass "stale PID file cleaned"

# serve: LISTENING line on stdout once healthy, exit as soon as stdin closes.
out="$T_TMP/serve.out" fifo="$T_TMP/serve.stdin"
mkfifo "$fifo"
scripts/engine serve --port 0 <"$fifo" >"$out" 2>/dev/null &
serve_pid=$!
T_EXTRA_PIDS+=("$serve_pid")
exec 7>"$fifo"
for _ in $(seq 600); do
  grep -q '^LISTENING ' "$out" && break
  pid_alive "$serve_pid" || break
  sleep 0.1
done
line="$(head -n1 "$out")"
[[ "$line" =~ ^LISTENING\ http://127\.0\.0\.1:[0-9]+$ ]] || fail "serve printed '$line'"
curl -fsS "${line#LISTENING }/health" >/dev/null || fail "serve: /health does not answer"
exec 7>&-
wait_gone "$serve_pid" || fail "engine serve still running after its stdin closed"
wait "$serve_pid" || fail "engine serve exited non-zero after stdin EOF"
pass "serve prints '$line' and exits when stdin closes"
