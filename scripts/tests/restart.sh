#!/usr/bin/env bash
# `restart` of scripts/agents and scripts/central: reuses the options of the last start (config,
# host, port, name, results dir), works for every named agent, validates the config first and
# leaves the running service untouched when it is broken; start-up failures state the real time.
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

ensure_engine
p1="$(free_port)"
p2="$(free_port)"
write_agent_config() { # FILE MACHINE_ID PORT
  cat >"$1" <<YAML
machine_id: "$2"
bind_host: "127.0.0.1"
bind_port: $3
results_dir: "$BENCH_RESULTS_DIR"
engine:
  kind: openai
  base_url: "$ENGINE_URL"
YAML
}
write_agent_config "$BENCH_CONFIG_DIR/agent.yaml" agent-1 "$p1"
# agent-2's own file says port p1 too: only the --port given at start keeps the two apart.
cfg2="$T_TMP/agent-2.yaml"
write_agent_config "$cfg2" agent-2 "$p1"

expect_rc 0 scripts/agents start --daemon
pid1="$(head -n1 "$BENCH_RUN_DIR/agent.pid")"
expect_rc 0 scripts/agents start --daemon --name agent-2 --config "$cfg2" --port "$p2"
pid2="$(head -n1 "$BENCH_RUN_DIR/agent-2.pid")"
[[ -f "$BENCH_RUN_DIR/agent-2.opts" ]] || fail "start did not record its options in run/agent-2.opts"
expect_contains "$(cat "$BENCH_RUN_DIR/agent-2.opts")" "port=$p2" "run/agent-2.opts"

# ---- restart --name with no other option: same config and port, the other agent untouched
expect_rc 0 scripts/agents restart --name agent-2
expect_contains "$OUT" "config ok" "restart --name agent-2 (check first)"
expect_contains "$OUT" "agent-2 stopped (PID $pid2)" "restart --name agent-2"
new2="$(head -n1 "$BENCH_RUN_DIR/agent-2.pid")"
[[ "$new2" != "$pid2" ]] || fail "restart --name agent-2 kept PID $pid2"
health="$(curl -fsS "http://127.0.0.1:$p2/health")" || fail "agent-2 not answering on its port $p2 after restart"
expect_contains "$health" '"machine_id":"agent-2"' "agent-2 /health after restart"
pid_alive "$pid1" || fail "restarting agent-2 touched agent-1"
expect_contains "$(curl -fsS "http://127.0.0.1:$p1/health")" '"machine_id":"agent-1"' "agent-1 /health"
pass "restart --name agent-2 reused its config and --port ($p2); agent-1 kept running"

# ---- a broken config: restart refuses, shows the error, the running agent keeps its PID
echo "queue_limt: 3" >>"$cfg2"
expect_rc 1 scripts/agents restart --name agent-2
expect_contains "$OUT" "queue_limt" "restart with a broken config shows the error"
expect_contains "$OUT" "line 8" "the error names the line"
expect_contains "$OUT" "keeps running (PID $new2)" "restart with a broken config"
pid_alive "$new2" || fail "a refused restart stopped agent-2"
[[ "$(head -n1 "$BENCH_RUN_DIR/agent-2.pid")" == "$new2" ]] || fail "a refused restart changed run/agent-2.pid"
curl -fsS "http://127.0.0.1:$p2/health" >/dev/null || fail "agent-2 stopped answering after a refused restart"
pass "restart with a broken config exits 1 with the error; agent-2 (PID $new2) untouched"

# ---- central: host and port from the first start (flag and env) survive a plain restart
cat >"$BENCH_CONFIG_DIR/machines.yaml" <<YAML
machines:
  - machine_id: "agent-1"
    agent_base_url: "http://127.0.0.1:$p1"
YAML
cport="$(free_port)"
expect_rc 0 env CENTRAL_PORT="$cport" scripts/central start --daemon --host 127.0.0.1
cpid="$(head -n1 "$BENCH_RUN_DIR/central.pid")"
expect_rc 0 scripts/central restart
expect_contains "$OUT" "central stopped (PID $cpid)" "central restart"
expect_contains "$OUT" "URL: http://127.0.0.1:$cport" "central restart keeps the port"
cnew="$(head -n1 "$BENCH_RUN_DIR/central.pid")"
[[ "$cnew" != "$cpid" ]] || fail "central restart kept PID $cpid"
cmdline="$(tr '\0' ' ' <"/proc/$cnew/cmdline")"
expect_contains "$cmdline" "--host 127.0.0.1" "central restarted with the recorded --host"
expect_contains "$cmdline" "--port $cport" "central restarted with the recorded port"
curl -fsS "http://127.0.0.1:$cport/api/machines" >/dev/null || fail "central not answering after restart"
pass "central restart kept --host 127.0.0.1 and CENTRAL_PORT=$cport from the first start"

echo "    lable: typo" >>"$BENCH_CONFIG_DIR/machines.yaml"
expect_rc 1 scripts/central restart
expect_contains "$OUT" "lable" "central restart with a broken config"
expect_contains "$OUT" "keeps running (PID $cnew)" "central restart with a broken config"
pid_alive "$cnew" || fail "a refused central restart stopped central"
pass "central restart with a broken config exits 1 with the error; central (PID $cnew) untouched"
expect_rc 0 scripts/central stop

# ---- a start that fails says how long it really waited (the port is held by another listener)
held="$(free_port)"
ready="$T_TMP/holder.ready"
python3 -c 'import socket,sys,time
s=socket.socket(); s.bind(("127.0.0.1",int(sys.argv[1]))); s.listen()
open(sys.argv[2],"w").write("ok"); time.sleep(600)' "$held" "$ready" &
T_EXTRA_PIDS+=($!)
for _ in $(seq 300); do [[ -s "$ready" ]] && break; sleep 0.1; done
[[ -s "$ready" ]] || fail "the port holder did not start"
expect_rc 0 scripts/agents stop --name agent-2
expect_rc 1 env BENCH_START_TIMEOUT_S=60 scripts/agents start --daemon --name agent-2 --config "$BENCH_CONFIG_DIR/agent.yaml" --port "$held"
expect_contains "$OUT" "agent-2 exited after" "a failed start"
[[ "$OUT" != *"within 60s"* ]] || fail "a failed start claimed a 60 s timeout: $OUT"
[[ "$OUT" =~ exited\ after\ ([0-9.]+)s ]] || fail "no elapsed time in: $OUT"
awk -v e="${BASH_REMATCH[1]}" 'BEGIN { exit !(e < 60) }' || fail "elapsed ${BASH_REMATCH[1]}s is not the real time"
pass "a start that fails reports the real elapsed time (${BASH_REMATCH[1]}s) and that the process exited"
expect_rc 0 scripts/agents stop
