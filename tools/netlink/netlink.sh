#!/usr/bin/env bash
# tools/netlink/netlink.sh: real rate-limited links between the pipeline's ranks on one machine.
#
# Each stage k runs in its own network namespace NAME_s<k>, whose one interface (eth0, 10.213.0.<k+1>/24) is a veth
# into a bridge (br0, 10.213.0.254/24) in a namespace of its own, NAME_hub. `tc` shapes each stage's egress:
# a token bucket (tbf) at MBPS Mbit/s, behind a netem delay of MS ms where the kernel has netem. A message from
# stage a to stage b leaves through a's shaped eth0, crosses the bridge and enters b unshaped: one shaped hop per
# message, so a stage's outgoing codes, code gradients and tied-weight bytes share its one link at MBPS.
#
# mpirun runs in NAME_hub (`exec` below): its PMIx server must be reachable from every rank, and a rank sees only
# its own namespace's interfaces, so the server listens on the bridge address (the caller sets
# PMIX_MCA_ptl_tcp_if_include=10.213.0.0/24; see train/pipeline_launch.cc). Keeping the whole network of a run in
# its own namespaces means the root namespace gets no address, route or interface, and runs side by side (each with
# its own NAME) cannot collide, though they all use the same subnet.
#
#   netlink.sh probe                              can this machine build the links? One line; exit 0 if it can
#   netlink.sh up    NAME STAGES MBPS [MS]        creates NAME_hub and NAME_s0 .. NAME_s<STAGES-1>, shaped
#   netlink.sh down  NAME                         removes them (idempotent: what is not there is skipped)
#   netlink.sh exec  NAME STAGES MBPS MS -- CMD   up, CMD inside NAME_hub, down (always, also on SIGTERM/SIGINT);
#                                                 exits with CMD's status (2 when the links could not be built)
#
# NAME: letters and digits, at most 24 (a run-specific prefix such as resbm<pid>, so that parallel runs do not
# collide). A stage reaches stage j at 10.213.0.<j+1>; the ranks run `ip netns exec NAME_s<k> ...`.
# Needs root, iproute2 (ip, tc) and a kernel that lets root create network namespaces (an unprivileged container
# does not). A run killed with SIGKILL leaves its namespaces: `netlink.sh down NAME` removes them
# (`ip netns list` shows them).
set -uo pipefail

# Debian's tc is in /usr/sbin, which a non-login shell's PATH may lack.
PATH="$PATH:/usr/sbin:/sbin"
readonly subnet_prefix=10.213.0
readonly hub_address="$subnet_prefix.254"

die() {
  echo "netlink.sh: $*" >&2
  exit 2
}

check_name() {
  [[ "$1" =~ ^[A-Za-z0-9]{1,24}$ ]] || die "NAME must be 1 to 24 letters or digits, not '$1'"
}

check_tools() {
  [ "$(id -u)" = 0 ] || die "needs root (network namespaces and tc); run as root, or use the emulated link"
  command -v ip > /dev/null || die "no 'ip' command: install iproute2 (apt-get install iproute2)"
  command -v tc > /dev/null || die "no 'tc' command: install iproute2 (apt-get install iproute2)"
}

# The namespaces of run NAME that exist now, hub first.
namespaces_of() {
  ip netns list 2> /dev/null | awk '{print $1}' | grep -E "^$1_(hub|s[0-9]+)\$" | sort -r
}

# Creates namespace $1 with its loopback up; on failure says why namespaces cannot be made here.
add_namespace() {
  local err
  if ! err=$(ip netns add "$1" 2>&1); then
    die "cannot create network namespace $1 (ip netns add: $err): an unprivileged container or a kernel without" \
        "network namespaces cannot host the real link; the emulated link (--link-mbps) needs neither"
  fi
  ip -n "$1" link set lo up || die "cannot bring up loopback in $1"
}

# Shapes the egress of device $2 in namespace $1: tbf at $3 Mbit/s, behind netem delay $4 ms when $4 > 0.
# burst: the bytes that may leave back to back at line speed. Small (3000 B, two full frames; or 1 ms at the rate
# when that is more, so that fast links do not spend a timer per frame) so that all of a message but its first
# burst is paced at the rate, as on a real link. The queue holds a second of traffic (at least 1 MB), so that a
# sender outrunning the link waits in the queue (TCP's own flow control) instead of losing packets.
shape() {
  local ns=$1 dev=$2 mbps=$3 ms=$4 burst limit err
  burst=$(awk -v r="$mbps" 'BEGIN { b = r * 1e6 / 8 / 1000; printf "%d", (b > 3000 ? b : 3000) }')
  limit=$(awk -v r="$mbps" 'BEGIN { l = r * 1e6 / 8; printf "%d", (l > 1048576 ? l : 1048576) }')
  if awk -v d="$ms" 'BEGIN { exit !(d > 0) }'; then
    if ! err=$(ip netns exec "$ns" tc qdisc add dev "$dev" root handle 1: netem delay "${ms}ms" 2>&1); then
      die "a delay of $ms ms was asked, but this kernel has no netem qdisc (tc: $err): delay is unsupported" \
          "here; run with latency 0 (rate only), or load sch_netem (modprobe sch_netem) where the kernel has it"
    fi
    ip netns exec "$ns" tc qdisc add dev "$dev" parent 1:1 handle 10: tbf rate "${mbps}mbit" burst "$burst" \
        limit "$limit" || die "tc tbf failed on $dev in $ns"
  else
    ip netns exec "$ns" tc qdisc add dev "$dev" root tbf rate "${mbps}mbit" burst "$burst" limit "$limit" ||
      die "tc tbf failed on $dev in $ns (does this kernel have sch_tbf?)"
  fi
}

up() {
  local name=$1 stages=$2 mbps=$3 ms=${4:-0} k ns
  check_name "$name"
  check_tools
  [[ "$stages" =~ ^[0-9]+$ ]] && [ "$stages" -ge 1 ] && [ "$stages" -le 253 ] ||
    die "STAGES must be 1 to 253, not '$stages'"
  awk -v r="$mbps" 'BEGIN { exit !(r + 0 > 0) }' || die "MBPS must be a rate > 0 in Mbit/s, not '$mbps'"
  awk -v d="$ms" 'BEGIN { exit !(d + 0 >= 0) }' || die "MS must be a delay >= 0 in ms, not '$ms'"
  [ -z "$(namespaces_of "$name")" ] || die "namespaces of $name exist already (netlink.sh down $name removes them)"
  add_namespace "${name}_hub"
  ip -n "${name}_hub" link add br0 type bridge &&
    ip -n "${name}_hub" addr add "$hub_address/24" dev br0 &&
    ip -n "${name}_hub" link set br0 up || die "cannot create the bridge in ${name}_hub"
  for ((k = 0; k < stages; ++k)); do
    ns="${name}_s$k"
    add_namespace "$ns"
    # The pair is born with one end in each namespace: nothing ever appears in the root namespace.
    ip -n "${name}_hub" link add "s$k" type veth peer name eth0 netns "$ns" &&
      ip -n "${name}_hub" link set "s$k" master br0 up &&
      ip -n "$ns" addr add "$subnet_prefix.$((k + 1))/24" dev eth0 &&
      ip -n "$ns" link set eth0 up || die "cannot connect $ns to the bridge"
    shape "$ns" eth0 "$mbps" "$ms"
  done
  local delay="no delay"
  if awk -v d="$ms" 'BEGIN { exit !(d > 0) }'; then delay="netem delay $ms ms"; fi
  echo "netlink.sh: up $name: stages in ${name}_s0..${name}_s$((stages - 1)) ($subnet_prefix.1..$stages), bridge" \
       "$hub_address in ${name}_hub; each stage's egress: tbf $mbps Mbit/s, $delay" >&2
}

down() {
  local name=$1 ns
  check_name "$name"
  for ns in $(namespaces_of "$name"); do
    ip netns del "$ns" || echo "netlink.sh: could not remove namespace $ns" >&2
  done
}

probe() {
  check_tools
  local ns="resbmprobe$$" netem=no
  add_namespace "$ns"
  # The probe namespace's own loopback: nothing outside it is touched.
  if ip netns exec "$ns" tc qdisc add dev lo root netem delay 1ms 2> /dev/null; then netem=yes; fi
  ip netns del "$ns"
  echo "netlink.sh: network namespaces, veth and tbf available; netem (delay) $netem"
}

# exec NAME STAGES MBPS MS -- CMD...: CMD runs in the background so that a signal to this script is handled at once
# (bash runs a trap only after the foreground command ends); the trap passes it on to CMD and the EXIT trap removes
# the namespaces whatever happened.
run() {
  run_name=$1
  local stages=$2 mbps=$3 ms=$4 status
  shift 4
  [ "${1:-}" = "--" ] && shift
  [ $# -gt 0 ] || die "exec: no command after --"
  check_name "$run_name"
  # Globals, not locals: the traps run outside this function's scope.
  trap 'down "$run_name"; echo "netlink.sh: down $run_name" >&2' EXIT
  trap 'exit 143' TERM INT HUP
  up "$run_name" "$stages" "$mbps" "$ms"
  ip netns exec "${run_name}_hub" "$@" &
  run_child=$!
  trap 'kill -TERM "$run_child" 2> /dev/null' TERM INT HUP
  while true; do
    wait "$run_child"
    status=$?
    # wait returns > 128 when a trapped signal interrupted it; the child may still be running.
    kill -0 "$run_child" 2> /dev/null || break
  done
  exit "$status"
}

case "${1:-}" in
  probe) probe ;;
  up)
    [ $# -ge 4 ] || die "usage: netlink.sh up NAME STAGES MBPS [MS]"
    up "$2" "$3" "$4" "${5:-0}"
    ;;
  down)
    [ $# -eq 2 ] || die "usage: netlink.sh down NAME"
    down "$2"
    ;;
  exec)
    [ $# -ge 6 ] || die "usage: netlink.sh exec NAME STAGES MBPS MS -- COMMAND..."
    shift
    run "$@"
    ;;
  *) die "usage: netlink.sh probe | up NAME STAGES MBPS [MS] | down NAME | exec NAME STAGES MBPS MS -- COMMAND..." ;;
esac
