#!/usr/bin/env bash
# A network partition across real network namespaces: agent b runs in its own namespace behind a
# veth pair; central and agent a on the host. Cutting the link mid-run must end b as `error`
# (central's pings go unanswered: nothing closes the socket), restoring it must bring b back
# online, and the next race must include it. Needs root and `ip netns`; skipped otherwise.
source "$(dirname "${BASH_SOURCE[0]}")/_lib.sh"

if [[ "$(id -u)" != 0 ]] || ! command -v ip >/dev/null; then
  echo "  skip: needs root and iproute2 (ip netns) to build a network partition"
  exit 0
fi
ns="bench-part-$$"
if ! ip netns add "$ns" 2>/dev/null; then
  echo "  skip: ip netns is not available here (no CAP_SYS_ADMIN or no netns support)"
  exit 0
fi
source "$(dirname "${BASH_SOURCE[0]}")/_fleet.sh"

# Interface names are limited to 15 characters; the subnet is picked per test run.
vh="bph$$" vn="bpn$$"
octet=$((($$ % 200) + 20))
host_ip="10.231.$octet.1" ns_ip="10.231.$octet.2"
net_cleanup() {
  ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
  ip link del "$vh" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
}
trap 'net_cleanup; t_cleanup' EXIT

ip link add "$vh" type veth peer name "$vn" || fail "cannot create the veth pair"
ip link set "$vn" netns "$ns"
ip addr add "$host_ip/24" dev "$vh"
ip link set "$vh" up
ip netns exec "$ns" ip addr add "$ns_ip/24" dev "$vn"
ip netns exec "$ns" ip link set "$vn" up
ip netns exec "$ns" ip link set lo up
pass "namespace $ns with $ns_ip behind $vh ($host_ip)"

port_a="$(free_port)" port_b="$(free_port)" port_c="$(free_port)"
start_agent a 127.0.0.1 "$port_a"
start_agent b "$ns_ip" "$port_b" ip netns exec "$ns"
start_central "$port_c" "a=http://127.0.0.1:$port_a" "b=http://$ns_ip:$port_b"
wait_until 30 online a || fail "agent a never online"
wait_until 30 online b || fail "agent b (in the namespace) never online"
pass "central reaches agent b across the veth pair"

run1="$(start_run)"
wait_until 60 streaming "$run1" b || fail "run $run1: b never streamed"
t0="$(now)"
# The cut: b's side of the link goes down; the host side stays up, so packets vanish silently.
ip netns exec "$ns" ip link set "$vn" down
wait_until 60 is_status "$run1" b error || fail "run $run1: partitioned agent b never became error"
cut_s="$(since "$t0")"
echo "  FIGURE partition: machine error after ${cut_s} s (target 15 s); reason: $(reason_of "$run1" b)"
below "$cut_s" 29 || fail "the partition took ${cut_s} s to detect"
pass "partition -> error in ${cut_s} s"

t0="$(now)"
ip netns exec "$ns" ip link set "$vn" up
wait_until 60 online b || fail "agent b never back online after the link returned"
echo "  FIGURE partition healed: back online after $(since "$t0") s (target 15 s)"
pass "link restored -> online"
wait_until 120 run_ended "$run1" || fail "run $run1 did not end"

run2="$(start_run)"
wait_until 60 streaming "$run2" b || fail "run $run2 does not include b"
wait_until 120 is_status "$run2" b complete || fail "run $run2: b did not complete ($(run_status "$run2" b))"
pass "the next race includes b and it completes"
