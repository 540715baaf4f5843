#!/usr/bin/env bash
# scripts/agents and scripts/central against the real binaries and the real local engine:
# daemon start, status, PID files, refusal of a second copy, stale PID files, restart, logs,
# foreground mode, stop.
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

ensure_engine
agent_port="$(free_port)"
cat >"$BENCH_CONFIG_DIR/agent.yaml" <<YAML
machine_id: "script-test"
label: "Script test agent"
bind_host: "127.0.0.1"
bind_port: $agent_port
results_dir: "$BENCH_RESULTS_DIR"
engine:
  kind: openai
  base_url: "$ENGINE_URL"
YAML
agent_url="http://127.0.0.1:$agent_port"

# ---- agent: start, PID file, status
expect_rc 0 scripts/agents start --daemon
expect_contains "$OUT" "URL: $agent_url" "agents start"
pidfile="$BENCH_RUN_DIR/agent.pid"
[[ -f "$pidfile" ]] || fail "no run/agent.pid after start"
pid="$(head -n1 "$pidfile")"
pid_alive "$pid" || fail "PID $pid from run/agent.pid is not alive"
health="$(curl -fsS "$agent_url/health")"
expect_contains "$health" '"machine_id":"script-test"' "/health"
pass "agent started as a daemon (PID $pid) at $agent_url"

expect_rc 0 scripts/agents status
for want in "agent: running" "PID: $pid" "uptime: " "URL: $agent_url" "engine: openai at $ENGINE_URL" "engine reachable: true"; do
  expect_contains "$OUT" "$want" "agents status"
done
# The alias behaves the same.
expect_rc 0 scripts/agent status
expect_contains "$OUT" "PID: $pid" "agent (alias) status"
pass "status shows PID, uptime, URL and a reachable engine"

# ---- a second copy is refused, and the first keeps running
expect_rc 1 scripts/agents start --daemon
expect_contains "$OUT" "already running (PID $pid" "second agents start"
pid_alive "$pid" || fail "first agent died after a refused second start"
pass "second start refused"

# ---- logs
expect_rc 0 scripts/agents logs -n 5
[[ -n "$OUT" ]] || fail "agents logs -n 5 printed nothing"
pass "logs -n prints the log tail"

# ---- restart gives a new process on the same URL
expect_rc 0 scripts/agents restart
expect_contains "$OUT" "agent stopped (PID $pid)" "agents restart"
new_pid="$(head -n1 "$pidfile")"
[[ "$new_pid" != "$pid" ]] || fail "restart kept PID $pid"
wait_gone "$pid" || fail "old agent $pid survived restart"
curl -fsS "$agent_url/health" >/dev/null || fail "agent not answering after restart"
pass "restart replaced PID $pid with $new_pid"

# ---- stop
expect_rc 0 scripts/agents stop
expect_contains "$OUT" "agent stopped (PID $new_pid)" "agents stop"
wait_gone "$new_pid" || fail "agent $new_pid still alive after stop"
[[ ! -f "$pidfile" ]] || fail "run/agent.pid left after stop"
expect_rc 3 scripts/agents status
pass "stop ended the agent and removed its PID file"

# ---- stale PID files: a dead PID, and a live PID that is not an agent (never killed)
sleep 0 &
dead_pid=$!
wait "$dead_pid"
printf '%s\n%s\n' "$dead_pid" "$agent_url" >"$pidfile"
expect_rc 0 scripts/agents start --daemon
expect_contains "$OUT" "removing stale PID file" "start over a dead PID"
pid="$(head -n1 "$pidfile")"
[[ "$pid" != "$dead_pid" ]] || fail "stale PID kept"
expect_rc 0 scripts/agents stop
wait_gone "$pid" || fail "agent $pid still alive"

sleep 300 &
bystander=$!
T_EXTRA_PIDS+=("$bystander")
printf '%s\n%s\n' "$bystander" "$agent_url" >"$pidfile"
expect_rc 3 scripts/agents status
expect_contains "$OUT" "removing stale PID file" "status over a reused PID"
printf '%s\n%s\n' "$bystander" "$agent_url" >"$pidfile"
expect_rc 0 scripts/agents stop
pid_alive "$bystander" || fail "scripts/agents stop killed an unrelated process"
pass "stale PID files (dead or reused PID) are cleaned; unrelated processes are never signalled"

# ---- foreground mode: runs until signalled, PID file meanwhile
fg_out="$T_TMP/fg.out"
scripts/agents start >"$fg_out" 2>&1 &
fg_script=$!
T_EXTRA_PIDS+=("$fg_script")
for _ in $(seq 600); do
  grep -q "running in the foreground" "$fg_out" && break
  pid_alive "$fg_script" || break
  sleep 0.1
done
grep -q "running in the foreground" "$fg_out" || fail "foreground start did not become ready: $(cat "$fg_out")"
fg_pid="$(head -n1 "$pidfile")"
curl -fsS "$agent_url/health" >/dev/null || fail "foreground agent not answering"
kill -TERM "$fg_script"
wait "$fg_script" || true
wait_gone "$fg_pid" || fail "foreground agent $fg_pid survived SIGTERM to the script"
[[ ! -f "$pidfile" ]] || fail "PID file left after the foreground agent ended"
pass "foreground start serves until signalled, then cleans up"

# ---- central with this agent
expect_rc 0 scripts/agents start --daemon
central_port="$(free_port)"
cat >"$BENCH_CONFIG_DIR/machines.yaml" <<YAML
machines:
  - machine_id: "script-test"
    label: "Script test agent"
    agent_base_url: "$agent_url"
YAML
expect_rc 0 env CENTRAL_PORT="$central_port" scripts/central start --daemon
expect_contains "$OUT" "URL: http://127.0.0.1:$central_port" "central start"
cpid="$(head -n1 "$BENCH_RUN_DIR/central.pid")"
pid_alive "$cpid" || fail "central PID $cpid not alive"
online=0
for _ in $(seq 300); do
  OUT="$(scripts/central status 2>&1)" || true
  if [[ "$OUT" == *"1 machines, 1 online"* ]]; then
    online=1
    break
  fi
  sleep 0.1
done
((online)) || fail "central status never showed the agent online: $OUT"
expect_contains "$OUT" "PID: $cpid" "central status"
expect_contains "$OUT" "script-test: online" "central status"
pass "central started (PID $cpid) and sees the agent online"

expect_rc 1 env CENTRAL_PORT="$central_port" scripts/central start --daemon
expect_contains "$OUT" "already running (PID $cpid" "second central start"
expect_rc 0 scripts/central logs -n 3
expect_rc 0 scripts/central stop
wait_gone "$cpid" || fail "central $cpid alive after stop"
[[ ! -f "$BENCH_RUN_DIR/central.pid" ]] || fail "run/central.pid left after stop"
expect_rc 0 scripts/agents stop
pass "central: second copy refused, logs, stop"
