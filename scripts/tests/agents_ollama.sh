#!/usr/bin/env bash
# scripts/agents with an Ollama config: when Ollama does not answer and `ollama` is installed, the
# script starts `ollama serve` (own PID file and log) and stops it again; when it is not installed,
# the script says how to install it or how to use the local engine instead.
# No real Ollama can be installed here, so a stand-in `ollama` executable on PATH plays its part:
# it accepts only `ollama serve`, honours OLLAMA_HOST=host:port, and answers /api/version and
# /api/tags as Ollama documents them.
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

fake_dir="$T_TMP/fake-ollama-bin"
mkdir -p "$fake_dir"
cat >"$fake_dir/ollama" <<'PY'
#!/usr/bin/env python3
import http.server, json, os, signal, sys
if sys.argv[1:] != ["serve"]:
    sys.exit(f"fake ollama: only 'serve' is supported, got {sys.argv[1:]}")
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
host, port = os.environ.get("OLLAMA_HOST", "127.0.0.1:11434").rsplit(":", 1)
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def do_GET(self):
        body = {"/api/version": {"version": "0.0.0-fake"}, "/api/tags": {"models": []}}.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(body or {"error": "not found"}).encode())
print(f"fake ollama listening on {host}:{port}", flush=True)
http.server.HTTPServer((host, int(port)), H).serve_forever()
PY
chmod +x "$fake_dir/ollama"

agent_port="$(free_port)"
ollama_port="$(free_port)"
cat >"$BENCH_CONFIG_DIR/agent.yaml" <<YAML
machine_id: "ollama-test"
bind_host: "127.0.0.1"
bind_port: $agent_port
results_dir: "$BENCH_RESULTS_DIR"
ollama_base_url: "http://127.0.0.1:11434"
YAML

# ---- not installed: explain, start the agent anyway (it reports the engine unreachable)
no_ollama_path="$(printf '%s' "$PATH" | tr ':' '\n' | while read -r d; do [[ -x "$d/ollama" ]] || printf '%s:' "$d"; done)"
expect_rc 0 env PATH="${no_ollama_path%:}" OLLAMA_PORT="$ollama_port" scripts/agents start --daemon
expect_contains "$OUT" "'ollama' is not installed" "start without ollama"
expect_contains "$OUT" "https://ollama.com/install.sh" "start without ollama"
expect_contains "$OUT" "scripts/engine start" "start without ollama"
[[ ! -f "$BENCH_RUN_DIR/ollama.pid" ]] || fail "ollama.pid written although ollama is not installed"
expect_rc 0 scripts/agents status
expect_contains "$OUT" "engine reachable: false" "status without ollama"
expect_rc 0 scripts/agents stop
pass "without ollama: install hint and local-engine alternative printed; agent runs, engine unreachable"

# ---- installed but not running: the script starts it (OLLAMA_PORT moves it off 11434)
expect_rc 0 env PATH="$fake_dir:$PATH" OLLAMA_PORT="$ollama_port" scripts/agents start --daemon
expect_contains "$OUT" "starting ollama serve on 127.0.0.1:$ollama_port" "start with ollama"
[[ -f "$BENCH_RUN_DIR/ollama.pid" ]] || fail "no run/ollama.pid"
opid="$(head -n1 "$BENCH_RUN_DIR/ollama.pid")"
version="$(curl -fsS "http://127.0.0.1:$ollama_port/api/version")"
expect_contains "$version" "0.0.0-fake" "ollama /api/version"
[[ -s "$BENCH_LOG_DIR/ollama.log" ]] || fail "logs/ollama.log is empty"
expect_rc 0 env OLLAMA_PORT="$ollama_port" scripts/agents status
expect_contains "$OUT" "engine: ollama at http://127.0.0.1:$ollama_port" "status with ollama"
pass "ollama serve started (PID $opid) with its own PID file and log"

# ---- stop ends both the agent and the ollama it started
expect_rc 0 scripts/agents stop
expect_contains "$OUT" "ollama serve (started by scripts/agents) stopped (PID $opid)" "stop"
wait_gone "$opid" || fail "ollama $opid alive after stop"
[[ ! -f "$BENCH_RUN_DIR/ollama.pid" ]] || fail "ollama.pid left after stop"
pass "stop also stops the ollama serve it started"

# ---- an Ollama that already answers is used as is (nothing started)
export OLLAMA_HOST="127.0.0.1:$ollama_port"
"$fake_dir/ollama" serve >/dev/null 2>&1 </dev/null &
T_EXTRA_PIDS+=($!)
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$ollama_port/api/version" >/dev/null 2>&1 && break; sleep 0.1; done
expect_rc 0 env PATH="$fake_dir:$PATH" scripts/agents start --daemon
expect_contains "$OUT" "Ollama answers at http://127.0.0.1:$ollama_port" "start with running ollama"
[[ ! -f "$BENCH_RUN_DIR/ollama.pid" ]] || fail "ollama.pid written although Ollama was already running"
expect_rc 0 scripts/agents stop
pass "a running Ollama is reused, not restarted"
