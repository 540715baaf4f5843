#!/usr/bin/env bash
# scripts/quickstart end to end against the real local engine, isolated from a user's setup
# (own run/, logs/, config/, results/, free ports, no Ollama), then --stop.
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

AGENT_PORT="$(free_port)" AGENT2_PORT="$(free_port)" CENTRAL_PORT="$(free_port)"
BENCH_ENGINE_PORT="$(free_port)" BENCH_ENGINE2_PORT="$(free_port)"
OLLAMA_PORT="$(free_port)" # nothing listens there: the quickstart must pick the local engine
export AGENT_PORT AGENT2_PORT CENTRAL_PORT BENCH_ENGINE_PORT BENCH_ENGINE2_PORT OLLAMA_PORT

log="$T_TMP/quickstart.out"
if ! scripts/quickstart >"$log" 2>&1; then
  cat "$log"
  fail "scripts/quickstart exited non-zero"
fi
OUT="$(cat "$log")"
sed 's/^/  | /' "$log"

for f in agent.yaml machines.yaml; do
  [[ -f "$BENCH_CONFIG_DIR/$f" ]] || fail "quickstart did not write config/$f"
done
for p in engine engine-2 agent agent-2 central; do
  [[ -f "$BENCH_RUN_DIR/$p.pid" ]] || fail "no run/$p.pid"
done
pass "configs written and five processes recorded"

run_id="$(sed -n -E 's/^Race ([0-9]{4}-[0-9]{2}-[0-9]{2}_[0-9]{6}_[0-9a-f]{6}): .*/\1/p' "$log")"
[[ -n "$run_id" ]] || fail "no 'Race <run_id>: <status>' line"
expect_contains "$OUT" "Race $run_id: complete" "race status"
expect_contains "$OUT" "Browser:       http://127.0.0.1:$CENTRAL_PORT/" "browser URL"
# Both machines completed with real numbers (engine openai, tokens > 0).
for label in "This machine · llama.cpp 2 threads" "This machine · llama.cpp 1 thread"; do
  row="$(grep -F "$label" "$log" | grep -E ' complete ' || true)"
  [[ -n "$row" ]] || fail "no complete summary row for '$label'"
  [[ "$row" == *openai* ]] || fail "row for '$label' is not from the openai engine: $row"
done
run_dir="$BENCH_RESULTS_DIR/runs/$run_id"
for f in metadata.json events.ndjson summary.json; do
  [[ -s "$run_dir/$f" ]] || fail "missing $run_dir/$f"
done
python3 - "$run_dir/summary.json" <<'PY' || fail "summary.json does not hold two real completed machines"
import json, sys
s = json.load(open(sys.argv[1]))
ms = {m["machine_id"]: m for m in s["machines"]}
assert set(ms) == {"local", "local-1t"}, ms.keys()
for m in ms.values():
    assert m["status"] == "complete", m
    assert m["engine"] == "openai", m
    assert 0 < m["ttft_ms"] < m["total_ms"], m
    assert m["gen_tokens"] > 0 and m["gen_tokens_per_s"] > 0, m
PY
pass "race $run_id complete on both agents; summary table and run files present"

# Running it again reuses everything and never overwrites the configs.
echo "# user edit" >>"$BENCH_CONFIG_DIR/agent.yaml"
if ! scripts/quickstart --no-race >"$log" 2>&1; then
  cat "$log"
  fail "second quickstart failed"
fi
OUT="$(cat "$log")"
expect_contains "$OUT" "keeping your $BENCH_CONFIG_DIR/agent.yaml" "second quickstart"
expect_contains "$OUT" "agent already running (reused)" "second quickstart"
grep -q "# user edit" "$BENCH_CONFIG_DIR/agent.yaml" || fail "agent.yaml was overwritten"
pass "second quickstart reuses processes and keeps the configs"

pids=()
for p in engine engine-2 agent agent-2 central; do
  pids+=("$(head -n1 "$BENCH_RUN_DIR/$p.pid")")
done
expect_rc 0 scripts/quickstart --stop
for pid in "${pids[@]}"; do
  wait_gone "$pid" || fail "PID $pid still alive after quickstart --stop"
done
for p in engine engine-2 agent agent-2 central; do
  [[ ! -f "$BENCH_RUN_DIR/$p.pid" ]] || fail "run/$p.pid left after --stop"
done
expect_rc 0 scripts/quickstart --stop
expect_contains "$OUT" "nothing recorded as started" "second --stop"
pass "--stop ended all five processes"
