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
# curl prints no trailing newline: decode the output as a stream of JSON values.
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
print(f"  job_done: ttft_ms={done['ttft_ms']:.1f} gen_tokens={done['gen_tokens']} "
      f"gen_tokens_per_s={done['gen_tokens_per_s']:.1f} engine_decode_tok_s={done.get('engine_decode_tok_s')}")
PY
pass "README curl examples work as written against a real agent"
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
cmd = cmd.replace("target/release/bench-agent", sys.argv[2]).replace("http://127.0.0.1:8091", sys.argv[3])
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
