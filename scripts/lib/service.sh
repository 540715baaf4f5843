# shellcheck shell=bash
# Process management shared by scripts/agents and scripts/central (sourced after common.sh).
# A service is described by variables the caller sets before calling svc_* functions:
#   SVC_NAME     human name ("agent", "central")
#   SVC_BIN      binary name (bench-agent, bench-central); SVC_PKG its cargo package
#   SVC_PID      PID file; SVC_LOG log file
#   SVC_URL      base URL a client uses (http://127.0.0.1:9001)
#   SVC_READY    path polled until it answers 2xx (/health)
#   SVC_ARGS     array: arguments after the binary

START_TIMEOUT_S="${BENCH_START_TIMEOUT_S:-60}"

# newest_source_mtime: epoch seconds of the newest file that a build depends on.
newest_source_mtime() {
  find "$ROOT_DIR/Cargo.toml" "$ROOT_DIR/Cargo.lock" "$ROOT_DIR/shared" "$ROOT_DIR/agent" "$ROOT_DIR/central" \
    "$ROOT_DIR/static" -type f \( -name '*.rs' -o -name '*.toml' -o -name '*.lock' -o -name '*.html' \
    -o -name '*.js' -o -name '*.css' \) -printf '%T@\n' 2>/dev/null | sort -n | tail -n1 | cut -d. -f1
}

# The cargo profile the scripts build and run: BENCH_PROFILE, default quickstart (Cargo.toml says
# why); dist for the smaller whole-program-LTO binaries, dev for debug ones.
BENCH_PROFILE="${BENCH_PROFILE:-quickstart}"

# profile_dir PROFILE: the directory under target/ where cargo puts that profile's binaries.
profile_dir() {
  case "$1" in
    dev | test) echo debug ;;
    bench) echo release ;;
    *) echo "$1" ;;
  esac
}

# bin_dir: where the binaries of BENCH_PROFILE are (CARGO_TARGET_DIR honoured).
bin_dir() {
  echo "${CARGO_TARGET_DIR:-$ROOT_DIR/target}/$(profile_dir "$BENCH_PROFILE")"
}

# build_bins PKG...: path of the directory with a usable binary of each PKG (package and binary
# share the name). BENCH_BIN_DIR wins (tests use target/debug); else the BENCH_PROFILE binaries
# when each is newer than every source; else one `cargo build --profile P -p PKG...` for all of
# them (one invocation: dependencies are resolved, compiled and linked once for both binaries).
build_bins() {
  local pkg dir stale=0 missing=0 src_mtime
  if [[ -n "${BENCH_BIN_DIR:-}" ]]; then
    for pkg in "$@"; do
      [[ -x "$BENCH_BIN_DIR/$pkg" ]] ||
        die "$BENCH_BIN_DIR/$pkg not found (BENCH_BIN_DIR=$BENCH_BIN_DIR); build it with cargo build -p $pkg"
    done
    echo "$BENCH_BIN_DIR"
    return 0
  fi
  dir="$(bin_dir)"
  src_mtime="$(newest_source_mtime)"
  for pkg in "$@"; do
    if [[ ! -x "$dir/$pkg" ]]; then
      stale=1 missing=1
    elif [[ -n "$src_mtime" && "$(stat -c %Y "$dir/$pkg")" -lt "$src_mtime" ]]; then
      info "$dir/$pkg is older than the sources; rebuilding"
      stale=1
    fi
  done
  # Without cargo, binaries older than the sources are still used (a copied target directory).
  if ((stale)) && { ((missing)) || command -v cargo >/dev/null 2>&1; }; then
    need_cmd cargo "Install Rust from https://rustup.rs, or set BENCH_BIN_DIR to a directory with prebuilt binaries."
    local args=() cmd
    for pkg in "$@"; do args+=(-p "$pkg"); done
    cmd="cargo build --profile $BENCH_PROFILE ${args[*]}"
    info "building $* ($cmd); the first build takes a few minutes"
    (cd "$ROOT_DIR" && cargo build --profile "$BENCH_PROFILE" "${args[@]}" >&2) || die "$cmd failed"
  fi
  for pkg in "$@"; do
    [[ -x "$dir/$pkg" ]] || die "$dir/$pkg is missing (cargo build --profile $BENCH_PROFILE -p $pkg)"
  done
  echo "$dir"
}

# find_bin NAME: path of a usable binary NAME (its package has the same name); see build_bins.
find_bin() {
  local dir
  dir="$(build_bins "$1")" || exit 1
  echo "$dir/$1"
}

svc_running_pid() {
  running_pid "$SVC_PID" "$SVC_BIN"
}

# svc_refuse_second_copy: exit with a clear message when this service already runs.
svc_refuse_second_copy() {
  local pid
  pid="$(svc_running_pid)"
  if [[ -n "$pid" ]]; then
    die "$SVC_NAME is already running (PID $pid, $(pidfile_url "$SVC_PID")); stop it first: $SVC_SCRIPT stop"
  fi
  if http_ok "$SVC_URL$SVC_READY"; then
    die "something already answers on $SVC_URL (not started by this script); stop it or pick another port"
  fi
}

# svc_wait_ready PID: wait for the ready URL; on failure print the log tail and exit non-zero,
# saying how long it really waited and whether the process exited or never answered.
svc_wait_ready() {
  local pid="$1"
  if wait_http "$SVC_URL$SVC_READY" "$pid" "$START_TIMEOUT_S"; then
    return 0
  fi
  local exited="$WAIT_HTTP_EXITED" elapsed="$WAIT_HTTP_ELAPSED_S"
  if pid_alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    sleep 0.5
    pid_alive "$pid" && kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$SVC_PID"
  show_log_tail "$SVC_LOG" 30
  if ((exited)); then
    die "$SVC_NAME exited after ${elapsed}s without answering $SVC_URL$SVC_READY (see the log above, $SVC_LOG)"
  fi
  die "$SVC_NAME did not answer $SVC_URL$SVC_READY after ${elapsed}s (BENCH_START_TIMEOUT_S=$START_TIMEOUT_S; see $SVC_LOG)"
}

# Options a service was started with live next to its PID file (run/NAME.opts, one key=value per
# line) so `restart` starts it the same way. Only keys in SVC_OPT_KEYS are read back.
svc_opts_file() {
  echo "${SVC_PID%.pid}.opts"
}

# svc_save_opts KEY=VALUE...: record the start options (values may hold spaces, not newlines).
svc_save_opts() {
  local file kv
  file="$(svc_opts_file)"
  mkdir -p "$(dirname "$file")"
  : >"$file.tmp"
  for kv in "$@"; do
    [[ "$kv" == *$'\n'* ]] && continue
    printf '%s\n' "$kv" >>"$file.tmp"
  done
  mv "$file.tmp" "$file"
}

# svc_recorded_opt KEY: the value recorded for KEY at the last start (empty when none).
svc_recorded_opt() {
  local file line
  file="$(svc_opts_file)"
  [[ -f "$file" ]] || return 0
  while IFS= read -r line; do
    if [[ "${line%%=*}" == "$1" ]]; then
      printf '%s' "${line#*=}"
      return 0
    fi
  done <"$file"
}

# svc_check_config BIN ARGS...: run `BIN check ARGS...`; when the config is invalid print the
# error and exit non-zero, leaving the running service untouched.
svc_check_config() {
  local bin="$1" out rc=0
  shift
  out="$(cd "$ROOT_DIR" && NO_COLOR=1 "$bin" check "$@" 2>&1)" || rc=$?
  if ((rc != 0)); then
    echo "$out" >&2
    local pid
    pid="$(svc_running_pid)"
    die "the config is invalid (${bin##*/} check exited $rc); $SVC_NAME was not restarted${pid:+ and keeps running (PID $pid)}"
  fi
  info "$out"
}

# svc_start_daemon BIN: detached (setsid, stdin /dev/null), PID file, log; waits until ready.
svc_start_daemon() {
  local bin="$1" pid
  mkdir -p "$(dirname "$SVC_PID")" "$(dirname "$SVC_LOG")"
  printf '==== %s start %s: %s %s\n' "$SVC_NAME" "$(date -u +%FT%TZ)" "$bin" "${SVC_ARGS[*]}" >>"$SVC_LOG"
  # NO_COLOR: the log is a file, not a terminal; keep it free of ANSI escapes.
  (cd "$ROOT_DIR" && NO_COLOR=1 exec setsid "$bin" "${SVC_ARGS[@]}" </dev/null >>"$SVC_LOG" 2>&1) &
  pid=$!
  write_pidfile "$SVC_PID" "$pid" "$SVC_URL"
  svc_wait_ready "$pid"
  echo "$SVC_NAME running (PID $pid)"
  echo "  URL: $SVC_URL"
  echo "  log: $SVC_LOG"
}

# svc_start_foreground BIN: runs attached to the terminal (output also appended to the log);
# Ctrl-C stops it. The PID file exists while it runs so status/stop work from another shell.
svc_start_foreground() {
  local bin="$1" pid
  mkdir -p "$(dirname "$SVC_PID")" "$(dirname "$SVC_LOG")"
  printf '==== %s start %s: %s %s\n' "$SVC_NAME" "$(date -u +%FT%TZ)" "$bin" "${SVC_ARGS[*]}" >>"$SVC_LOG"
  (cd "$ROOT_DIR" && exec "$bin" "${SVC_ARGS[@]}") > >(tee -a "$SVC_LOG") 2>&1 &
  pid=$!
  write_pidfile "$SVC_PID" "$pid" "$SVC_URL"
  trap 'kill -TERM "$pid" 2>/dev/null || true' INT TERM
  svc_wait_ready "$pid"
  echo "$SVC_NAME running in the foreground (PID $pid) at $SVC_URL; Ctrl-C stops it" >&2
  local rc=0
  wait "$pid" || rc=$?
  # wait returns early when a trapped signal arrives: wait again for the real exit.
  while pid_alive "$pid"; do wait "$pid" || rc=$?; done
  rm -f "$SVC_PID"
  return "$rc"
}

svc_stop() {
  stop_pidfile "$SVC_NAME" "$SVC_PID" "${BENCH_STOP_GRACE_S:-10}" "$SVC_BIN"
}

svc_logs() {
  local lines="$1" follow="$2"
  [[ -f "$SVC_LOG" ]] || die "no log yet at $SVC_LOG (has $SVC_NAME been started?)"
  if ((follow)); then
    exec tail -n "$lines" -F "$SVC_LOG"
  fi
  tail -n "$lines" "$SVC_LOG"
}

# yaml_scalar FILE KEY: value of a top-level `KEY: value` line (quotes and comments stripped).
# Deliberately tiny: the binaries own real parsing; scripts only need a few flat keys.
yaml_scalar() {
  local file="$1" key="$2"
  [[ -f "$file" ]] || return 0
  sed -n -E "s/^${key}:[[:space:]]*([^#]*).*/\\1/p" "$file" | head -n1 | sed -E 's/[[:space:]]+$//; s/^"(.*)"$/\1/; s/^'"'"'(.*)'"'"'$/\1/'
}
