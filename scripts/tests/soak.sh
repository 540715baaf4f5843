#!/usr/bin/env bash
# The 2-minute soak of the test suite: `scripts/bench --soak 2 --dev` races back to back on four
# agent processes through central while the injector kills, stops and restarts agents, stalls and
# kills engines, restarts and crashes central and fills its disk. Every run must end terminal, no
# event may be lost, every line of every file must parse, and every kind of fault must have been
# injected (disk_full only where a tmpfs can be mounted, i.e. as root).
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

out="$T_TMP/soak.json"
log="$T_TMP/soak.log"
if ! scripts/bench --soak 2 --dev --out "$out" >"$log" 2>&1; then
  tail -n 40 "$log" | sed 's/^/  | /'
  fail "scripts/bench --soak 2 failed"
fi
sed -n '/^scenario/,/^results:/p' "$log" | sed 's/^/  | /'

python3 - "$out" <<'PY' || fail "soak figures (see above)"
import json, os, sys
r = json.load(open(sys.argv[1]))
s = r["soak"]
problems = []
for key in ["races_started", "races_ended", "faults_injected", "events_lost", "unparsable_lines",
            "runs_non_terminal", "rss_growth_mb_per_h"]:
    if key not in s:
        problems.append(f"soak.{key} missing")
if s["races_started"] < 5:
    problems.append(f"only {s['races_started']} races in 2 minutes")
if s["races_ended"] != s["races_started"]:
    problems.append(f"{s['races_started']} races started, {s['races_ended']} ended")
for key in ["events_lost", "unparsable_lines", "runs_non_terminal"]:
    if s[key] != 0:
        problems.append(f"{key} = {s[key]}")
kinds = ["agent_kill", "agent_stop", "agent_restart", "engine_stall", "engine_kill",
         "central_restart", "central_kill"]
if os.geteuid() == 0:
    kinds.append("disk_full")
for k in kinds:
    if s["faults_injected"].get(k, 0) < 1:
        problems.append(f"no {k} fault injected: {s['faults_injected']}")
for p in ["central", "soak-1", "soak-2", "soak-3", "soak-4"]:
    if p not in s["rss_growth_mb_per_h"]:
        problems.append(f"no RSS figure for {p}")
errors = r["soak"].get("fault_errors") or r["soak"]["details"].get("fault_errors")
if errors:
    problems.append(f"faults that could not be injected: {errors}")
print("  soak:", json.dumps({k: s[k] for k in ["races_started", "races_ended", "faults_injected", "events_lost",
      "unparsable_lines", "runs_non_terminal", "rss_growth_mb_per_h"]}))
if problems:
    print("  problems:", *problems, sep="\n    ")
    sys.exit(1)
PY
pass "2-minute soak: every run terminal, no event lost, every line parses, every fault kind injected"
