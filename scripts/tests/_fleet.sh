# shellcheck shell=bash
# Helpers for fault tests that run real agents (mock engine) and a real central (sourced after
# _lib.sh): start them, read machine and run state, poll with a bound, time what happens.

AGENT_BIN="$BENCH_BIN_DIR/bench-agent"
CENTRAL_BIN="$BENCH_BIN_DIR/bench-central"
[[ -x "$AGENT_BIN" && -x "$CENTRAL_BIN" ]] || fail "build first: cargo build --workspace (no $AGENT_BIN or $CENTRAL_BIN)"
command -v python3 >/dev/null || fail "python3 is needed"
export NO_PROXY='*' no_proxy='*'

now() { python3 -c 'import time; print(time.monotonic())'; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }
below() { python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < float(sys.argv[2]) else 1)" "$1" "$2"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# json EXPR: evaluates a Python expression over the JSON document on stdin (as `d`).
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# wait_until SECONDS CMD...: polls CMD every 0.1 s; false after SECONDS.
wait_until() {
  local limit="$1" i
  shift
  for i in $(seq $((limit * 10))); do
    "$@" && return 0
    sleep 0.1
  done
  return 1
}

# start_agent NAME HOST PORT [PREFIX...]: a mock-engine agent (8 tok/s, 120 tokens: a job lasts ~15 s, long enough
# to fault it mid-run), started under PREFIX (e.g. `ip netns exec NS`); sets LAST_PID. Beyond loopback it
# gets the token "tok-NAME" (which start_central gives such machines), as an agent there must have one.
start_agent() {
  local name="$1" host="$2" port="$3" token=""
  shift 3
  [[ "$host" == 127.0.0.1 ]] || token="auth_token: \"tok-$name\""
  cat >"$BENCH_CONFIG_DIR/$name.yaml" <<YAML
$token
machine_id: "$name"
bind_host: "$host"
bind_port: $port
results_dir: "$BENCH_RESULTS_DIR/$name"
max_connections: 256
header_read_timeout_s: 2
engine:
  kind: mock
  mock: {ttft_ms: 50, tokens_per_s: 8, models: ["mock-llm"]}
YAML
  "$@" "$AGENT_BIN" --config "$BENCH_CONFIG_DIR/$name.yaml" >>"$BENCH_LOG_DIR/$name.log" 2>&1 &
  LAST_PID=$!
  T_EXTRA_PIDS+=("$LAST_PID")
  wait_until 30 curl -fs -o /dev/null "http://$host:$port/health" || fail "agent $name did not start"
}

# start_central PORT MACHINE=URL...: central on 127.0.0.1:PORT racing those agents; sets CENTRAL, CENTRAL_PID.
start_central() {
  local port="$1" m
  shift
  {
    echo "machines:"
    for m in "$@"; do
      printf '  - machine_id: "%s"\n    agent_base_url: "%s"\n' "${m%%=*}" "${m#*=}"
      [[ "${m#*=}" == http://127.0.0.1:* ]] || printf '    token: "tok-%s"\n' "${m%%=*}"
    done
    printf 'central:\n  max_connections: 256\n  header_read_timeout_s: 2\n'
  } >"$BENCH_CONFIG_DIR/machines.yaml"
  "$CENTRAL_BIN" serve --config "$BENCH_CONFIG_DIR/machines.yaml" --results-dir "$BENCH_RESULTS_DIR" \
    --host 127.0.0.1 --port "$port" >"$BENCH_LOG_DIR/central.log" 2>&1 &
  CENTRAL_PID=$!
  T_EXTRA_PIDS+=("$CENTRAL_PID")
  CENTRAL="http://127.0.0.1:$port"
  wait_until 30 curl -fs -o /dev/null "$CENTRAL/health" || fail "central did not start"
}

machine_field() { # ID EXPR-over-m
  curl -fsS "$CENTRAL/api/machines" | json "[$2 for m in d if m['machine_id'] == '$1'][0]"
}
online() { [[ "$(machine_field "$1" "m['state'] in ('online', 'busy') and m['ws_connected']")" == True ]]; }

start_run() { # prints the run id
  curl -fsS -X POST "$CENTRAL/api/runs" -H 'Content-Type: application/json' \
    -d '{"model": "mock-llm", "prompt": "tell me a story", "max_tokens": 120}' | json "d['run_id']"
}
run_status() { # RUN MACHINE
  curl -fsS "$CENTRAL/api/runs/$1" | json "d['machines'].get('$2', {}).get('status')"
}
is_status() { [[ "$(run_status "$1" "$2")" == "$3" ]]; }
run_ended() { [[ "$(curl -fsS "$CENTRAL/api/runs/$1" | json "d['live']")" == False ]]; }
streaming() { # RUN MACHINE: the machine's job runs and has sent a few events
  curl -fsS "$CENTRAL/api/runs/$1" |
    json "d['machines'].get('$2', {}).get('status') == 'running' and d['machines']['$2'].get('last_seq', 0) >= 3" |
    grep -q True
}
reason_of() { curl -fsS "$CENTRAL/api/runs/$1" | json "d['machines']['$2'].get('reason')"; }
