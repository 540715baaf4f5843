# shellcheck shell=bash
# Helpers shared by scripts/engine, scripts/agents, scripts/central and scripts/quickstart.
# Sourced, never executed. Why one file: the PID-file, readiness and stop logic must behave the same
# for every process these scripts manage (refuse a second copy, clean stale PID files, SIGTERM then
# SIGKILL only our own PID).

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN_DIR="${BENCH_RUN_DIR:-$ROOT_DIR/run}"
LOG_DIR="${BENCH_LOG_DIR:-$ROOT_DIR/logs}"

die() {
  echo "error: $*" >&2
  exit 1
}

warn() {
  echo "warning: $*" >&2
}

info() {
  echo "$*" >&2
}

need_cmd() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' is required but not installed. $2"
}

# pid_alive PID: true when the process exists (and is not a zombie).
pid_alive() {
  local pid="$1"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  local state
  state="$(ps -o stat= -p "$pid" 2>/dev/null || true)"
  [[ -n "$state" && "$state" != Z* ]]
}

# read_pid FILE: prints the PID recorded in FILE (first line) or nothing.
read_pid() {
  local file="$1"
  [[ -f "$file" ]] || return 0
  head -n1 "$file" 2>/dev/null | tr -dc '0-9'
}

# pidfile_url FILE: the URL recorded on the second line of FILE, if any.
pidfile_url() {
  local file="$1"
  [[ -f "$file" ]] || return 0
  sed -n 2p "$file" 2>/dev/null
}

# pid_matches PID PATTERN: true when the process command line contains PATTERN (guards against a
# PID that was reused by an unrelated process after ours died without removing its PID file).
pid_matches() {
  local pid="$1" pattern="${2:-}"
  [[ -z "$pattern" ]] && return 0
  if [[ -r "/proc/$pid/cmdline" ]]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$pattern"
  else
    ps -o command= -p "$pid" 2>/dev/null | grep -qF -- "$pattern"
  fi
}

# running_pid FILE [PATTERN]: prints the live PID from FILE; removes a stale FILE (and says so) otherwise.
running_pid() {
  local file="$1" pattern="${2:-}" pid
  pid="$(read_pid "$file")"
  if [[ -n "$pid" ]] && pid_alive "$pid" && pid_matches "$pid" "$pattern"; then
    echo "$pid"
    return 0
  fi
  if [[ -f "$file" ]]; then
    info "removing stale PID file $file (process ${pid:-?} is gone or is not ours)"
    rm -f "$file"
  fi
  return 0
}

# write_pidfile FILE PID URL
write_pidfile() {
  mkdir -p "$(dirname "$1")"
  printf '%s\n%s\n' "$2" "$3" >"$1.tmp"
  mv "$1.tmp" "$1"
}

# http_ok URL: true when GET URL answers 2xx within 2 s.
http_ok() {
  curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null
}

# now_s: wall-clock seconds with sub-second precision (for elapsed-time messages).
now_s() {
  if [[ -n "${EPOCHREALTIME:-}" ]]; then
    echo "${EPOCHREALTIME/,/.}"
  else
    date +%s.%N
  fi
}

# elapsed_since START_S: seconds since START_S (from now_s), one decimal.
elapsed_since() {
  awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.1f", b - a }'
}

# wait_http URL PID TIMEOUT_S: wait until URL answers 2xx while PID stays alive. The deadline is
# measured on the clock (each probe can take up to 2 s on a loaded machine), and WAIT_HTTP_ELAPSED_S
# tells the caller how long it really waited; WAIT_HTTP_EXITED=1 when PID died first.
wait_http() {
  local url="$1" pid="$2" timeout_s="$3" start
  start="$(now_s)"
  WAIT_HTTP_EXITED=0
  while :; do
    if http_ok "$url"; then
      WAIT_HTTP_ELAPSED_S="$(elapsed_since "$start")"
      return 0
    fi
    if [[ -n "$pid" ]] && ! pid_alive "$pid"; then
      WAIT_HTTP_EXITED=1
      WAIT_HTTP_ELAPSED_S="$(elapsed_since "$start")"
      return 1
    fi
    WAIT_HTTP_ELAPSED_S="$(elapsed_since "$start")"
    awk -v e="$WAIT_HTTP_ELAPSED_S" -v t="$timeout_s" 'BEGIN { exit !(e >= t) }' && return 1
    sleep 0.1
  done
}

# stop_pidfile NAME FILE [GRACE_S] [PATTERN]: SIGTERM the recorded PID, wait, then SIGKILL only that PID.
stop_pidfile() {
  local name="$1" file="$2" grace_s="${3:-10}" pattern="${4:-}" pid waited=0
  pid="$(running_pid "$file" "$pattern")"
  if [[ -z "$pid" ]]; then
    echo "$name is not running"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  while pid_alive "$pid" && ((waited < grace_s * 10)); do
    sleep 0.1
    waited=$((waited + 1))
  done
  if pid_alive "$pid"; then
    warn "$name (PID $pid) ignored SIGTERM for ${grace_s}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  rm -f "$file"
  echo "$name stopped (PID $pid)"
}

# uptime_of PID: human-readable elapsed time of a process.
uptime_of() {
  ps -o etime= -p "$1" 2>/dev/null | tr -d ' '
}

# show_log_tail FILE [N]: print the last N lines of a log to stderr (start-up failures).
show_log_tail() {
  local file="$1" n="${2:-30}"
  if [[ -f "$file" ]]; then
    echo "---- last $n lines of $file ----" >&2
    tail -n "$n" "$file" >&2
    echo "----" >&2
  fi
}

# free_port: an unused TCP port on 127.0.0.1 (bound then released by the kernel).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# connect_host HOST: a bind address turned into one a client can reach.
connect_host() {
  case "$1" in
    "" | 0.0.0.0 | "::" | "[::]") echo 127.0.0.1 ;;
    *) echo "$1" ;;
  esac
}

# json_get JSON_FILE_OR_- PYEXPR: evaluate a Python expression over parsed JSON `d` (prints '' on error).
json_get() {
  python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
    v = eval(sys.argv[1], {"d": d})
    print("" if v is None else (json.dumps(v) if isinstance(v, (dict, list, bool)) else v))
except Exception:
    print("")
' "$2" <"$1"
}
