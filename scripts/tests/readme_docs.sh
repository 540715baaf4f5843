#!/usr/bin/env bash
# The reference in README.md and docs/*.md stays true to the code: CSV headers equal the constants
# in shared/src/sweep.rs, every agent.yaml key and every event type appears, and every key of the
# shipped examples is documented. (The complete key and event-kind lists are checked by Rust tests
# that read them from serde: see docs/configuration.md and docs/events.md.)
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

python3 - "$ROOT_DIR" <<'PY' || fail "README out of date (see above)"
import re, sys, pathlib
root = pathlib.Path(sys.argv[1])
# The reference lives in README.md and docs/*.md (the README points there).
readme = (root / "README.md").read_text() + "".join(p.read_text() for p in sorted((root / "docs").glob("*.md")))
problems = []

# 1. CSV headers: README's fenced line after <!-- csv:NAME --> equals NAME_CSV_HEADER in sweep.rs.
sweep = (root / "shared/src/sweep.rs").read_text()
for name in ("requests", "summary", "load_times"):
    m = re.search(rf"pub const {name.upper()}_CSV_HEADER: &\[&str\] = &\[(.*?)\];", sweep, re.S)
    if not m:
        problems.append(f"{name.upper()}_CSV_HEADER not found in sweep.rs")
        continue
    code = ",".join(re.findall(r'"([^"]+)"', m.group(1)))
    d = re.search(rf"<!-- csv:{name} -->\s*```\s*\n(.*?)\n```", readme, re.S)
    if not d:
        problems.append(f"README has no <!-- csv:{name} --> block")
    elif d.group(1).strip() != code:
        problems.append(f"{name}.csv header differs:\n  README: {d.group(1).strip()}\n  code:   {code}")

# 2. agent.yaml keys: every field of the file's raw struct is in the README table.
cfg = (root / "agent/src/config.rs").read_text()
raw = re.search(r"struct RawConfig \{(.*?)\n\}", cfg, re.S)
keys = re.findall(r"^\s+(\w+):", raw.group(1), re.M) if raw else []
if not keys:
    problems.append("RawConfig not found in agent/src/config.rs")
for k in keys:
    if f"`{k}`" not in readme:
        problems.append(f"agent.yaml key `{k}` is not documented in README")
eng = (root / "agent/src/engine/mod.rs").read_text()
es = re.search(r"pub struct EngineSettings \{(.*?)\n\}", eng, re.S)
for k in re.findall(r"^\s+pub (\w+):", es.group(1), re.M) if es else []:
    if f"`engine.{k}`" not in readme:
        problems.append(f"agent.yaml key `engine.{k}` is not documented in README")

# 2b. machines.yaml keys: every field of central's MachineConfig is in the README table.
ccfg = (root / "central/src/config.rs").read_text()
mc = re.search(r"pub struct MachineConfig \{(.*?)\n\}", ccfg, re.S)
mkeys = re.findall(r"^\s+pub (\w+):", mc.group(1), re.M) if mc else []
if not mkeys:
    problems.append("MachineConfig not found in central/src/config.rs")
for k in mkeys:
    if f"`machines[].{k}`" not in readme:
        problems.append(f"machines.yaml key `machines[].{k}` is not documented in README")

# 3. Event types named in event.rs.
ev = (root / "shared/src/event.rs").read_text()
for t in set(re.findall(r'Event::\w+\(_\) => "(\w+)"', ev)):
    if f"`{t}`" not in readme:
        problems.append(f"event type `{t}` is not documented in README")

# 4. Every key used in the shipped example configs is documented.
for ex in ("config/agent.example.yaml", "config/machines.example.yaml"):
    for k in set(re.findall(r"^\s*-?\s*(\w+):", (root / ex).read_text(), re.M)):
        if k not in readme:
            problems.append(f"{ex} key `{k}` is not mentioned in README")

for p in problems:
    print("  " + p)
sys.exit(1 if problems else 0)
PY
pass "CSV headers, agent.yaml keys, event types and example keys match the code"

# The systemd units and README refer to scripts and flags that exist.
for unit in scripts/systemd/*.service; do
  grep -q '^ExecStart=' "$unit" || fail "$unit has no ExecStart"
  grep -q '^\[Install\]' "$unit" || fail "$unit has no [Install] section"
done
grep -q -- '--no-stdin-watch' scripts/engine_server.py || fail "engine unit uses --no-stdin-watch, which engine_server.py lacks"
pass "systemd units are complete and use existing options"
