#!/usr/bin/env bash
# `bench-agent tui` driven with keys in a real 80x24 terminal (tmux) against the real local
# engine: the model list comes from the engine, checkboxes and settings are edited with keys,
# the sweep runs with its live table, and the CSV paths are shown at the end and after exit.
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

if ! command -v tmux >/dev/null 2>&1; then
  echo "  skip: tmux is not installed (scripts/test installs it with apt-get when it can)"
  exit 0
fi
ensure_engine
out_dir="$T_TMP/tui"
sock="bench-tui-test-$$"
TMUX_CMD=(tmux -L "$sock" -f /dev/null)
tui_cleanup() { "${TMUX_CMD[@]}" kill-server >/dev/null 2>&1 || true; }
trap 'tui_cleanup; t_cleanup' EXIT

# The pane stays after the app exits so its last words can be read.
"${TMUX_CMD[@]}" new-session -d -s tui -x 80 -y 24 \
  "$BENCH_BIN_DIR/bench-agent tui --base-url $ENGINE_URL --out-dir $out_dir --ctx 512 --sweep-count 1 --parallel 1 --runs 1 --warmup 3 --out-tokens 8; echo \"tui exited \$?\"; exec cat" ||
  fail "cannot start tmux"
# `exec cat` keeps the pane open after the app (reads the pane's terminal, which this test never writes to).

screen() { "${TMUX_CMD[@]}" capture-pane -p -t tui; }
keys() { "${TMUX_CMD[@]}" send-keys -t tui "$@"; }
# wait_screen TEXT LIMIT_S: until the 80x24 screen shows TEXT.
wait_screen() {
  local i
  for i in $(seq $(($2 * 5))); do
    screen | grep -qF -- "$1" && return 0
    sleep 0.2
  done
  fail "the screen never showed '$1'; it shows:
$(screen)"
}

wait_screen "[x] smollm2:135m" 60
s="$(screen)"
for want in "LLMBench sweep" "Context size (tokens)" "Sweep points" "Parallel list" "Runs per cell" "Warm-up requests" "Output tokens" "Enter start"; do
  expect_contains "$s" "$want" "set-up screen"
done
pass "set-up screen lists the engine's model with a checkbox and every setting at 80x24"

keys Space
wait_screen "[ ] smollm2:135m" 10
keys Enter
wait_screen "pick at least one model" 10
keys Space
wait_screen "[x] smollm2:135m" 10
# Parallel list: Tab to it (ctx, points, parallel), clear, type 1,2.
keys Tab Tab Tab BSpace BSpace BSpace BSpace
keys -l "1,2"
wait_screen "[1,2" 10
wait_screen "2 cells" 10
pass "Space toggles the model, an empty pick is refused, the parallel list is edited with keys"

keys Enter
wait_screen "TTFT ms" 30
s="$(screen)"
for want in "Strm tok/s" "Tot tok/s" "Err" "cells " "x/Esc stop"; do
  expect_contains "$s" "$want" "live table"
done
pass "Enter starts the sweep: live table with short headers and units, status line"

wait_screen "sweep done: 2 cells measured" 600
s="$(screen)"
expect_contains "$s" "summary: $out_dir/summary.csv" "finished screen"
expect_contains "$s" "cells 2/2" "finished screen"
rows="$(($(wc -l <"$out_dir/summary.csv") - 1))"
((rows == 2)) || fail "summary.csv has $rows rows, want 2"
[[ -s "$out_dir/requests.csv" && -s "$out_dir/load_times.csv" ]] || fail "requests.csv / load_times.csv missing"
pass "the sweep finished: CSV paths on screen, summary.csv has $rows rows"

keys q
wait_screen "tui exited 0" 30
expect_contains "$(screen)" "load times: $out_dir/load_times.csv" "after exit"
pass "q quits with exit 0 and prints the CSV paths on the restored terminal"
