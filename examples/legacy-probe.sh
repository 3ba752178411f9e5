#!/bin/sh
# The Linux legacy virtio-pci probe of an MMR VF, through vmmr's guest view (the translator),
# with curl and a POSIX shell. Each I/O access below is one request; the translator turns it
# into one MMIO access of the same width on the VF's BAR 2 (legacy block at 0x1000). The order
# is drivers/virtio/virtio_pci_legacy.c's (with MSI-X off, so device config starts at 0x14):
# reset, ACKNOWLEDGE, DRIVER, features, device config, each queue, DRIVER_OK, a kick of queue 0.
#
#   VMMR_URL=http://127.0.0.1:8080 sh examples/legacy-probe.sh [PF [VF]]
#
# Enables 4 VFs on PF (default 0000:01:00.0) when it has none; VF defaults to 0000:01:00.1.
# VMMR_TOKEN, when set, is sent as a bearer token.
set -eu

api="${VMMR_URL:-http://127.0.0.1:8080}"
api="${api%/}/api/v1"
pf="${1:-0000:01:00.0}"
vf="${2:-0000:01:00.1}"

# Legacy register block, virtio 1.x §4.1.4.10 "Legacy Interfaces: A Note on PCI Device Layout"
# (Linux include/uapi/linux/virtio_pci.h).
HOST_FEATURES=0x00 GUEST_FEATURES=0x04 QUEUE_PFN=0x08 QUEUE_NUM=0x0c
QUEUE_SEL=0x0e QUEUE_NOTIFY=0x10 STATUS=0x12 ISR=0x13 CONFIG=0x14
PFN_BASE=0x10000

# call METHOD PATH [JSON]: sets $answer to the answer; a refusal prints the problem and exits 1.
call() {
  method="$1" path="$2" body="${3:-}"
  shift 2
  set --
  if [ -n "$body" ]; then
    set -- -H 'content-type: application/json' --data "$body"
  fi
  if [ -n "${VMMR_TOKEN:-}" ]; then
    set -- "$@" -H "authorization: Bearer $VMMR_TOKEN"
  fi
  if ! answer=$(curl -s --fail-with-body -X "$method" "$@" "$api$path"); then
    echo "legacy-probe: $method $path: ${answer:-cannot reach $api}" >&2
    exit 1
  fi
}

# field NAME: sets $value to the string or number NAME of the JSON object in $answer.
field() {
  value=$(printf '%s' "$answer" | sed -n "s/.*\"$1\":\"\{0,1\}\([0-9a-fx]*\).*/\1/p")
}

# io_read PORT WIDTH: sets $value (a number).
io_read() {
  call GET "/functions/$vf/guest/io/$1?width=$2"
  field value
  value=$((value))
}
io_write() { call PUT "/functions/$vf/guest/io/$1" "{\"width\":$2,\"value\":$(($3))}"; }
add_status() {
  io_read $STATUS 1
  io_write $STATUS 1 $((value | $1))
}

call GET "/pfs/$pf/sriov"
field numVfs
if [ "$value" = 0 ]; then
  call PUT "/pfs/$pf/sriov" '{"numVfs":4}'
fi
call GET "/functions/$vf/guest/config/0x00?width=4"
field value
printf '%s: %04x:%04x\n' "$vf" $((value & 0xffff)) $((value >> 16))
# Command: I/O Space, as pci_enable_device.
call PUT "/functions/$vf/guest/config/0x04" '{"width":2,"value":1}'
io_write $STATUS 1 0
io_read $STATUS 1
if [ "$value" -ne 0 ]; then
  echo "legacy-probe: the device did not reset" >&2
  exit 1
fi
add_status 1
add_status 2
io_read $HOST_FEATURES 4
features=$value
io_write $GUEST_FEATURES 4 $features
printf 'host features 0x%08x\n' $features
mac=""
for i in 0 1 2 3 4 5; do
  io_read $((CONFIG + i)) 1
  mac="$mac$(printf '%02x' $value)"
  if [ $i -lt 5 ]; then mac="$mac:"; fi
done
echo "mac $mac"
queue=0
while :; do
  io_write $QUEUE_SEL 2 $queue
  io_read $QUEUE_NUM 2
  size=$value
  if [ $size -eq 0 ]; then break; fi
  io_read $QUEUE_PFN 4
  if [ "$value" -ne 0 ]; then
    echo "legacy-probe: queue $queue is already active" >&2
    exit 1
  fi
  pfn=$((PFN_BASE + queue * 0x10))
  io_write $QUEUE_PFN 4 $pfn
  printf 'queue %d: %d entries, pfn 0x%x\n' $queue $size $pfn
  queue=$((queue + 1))
done
add_status 4
io_write $QUEUE_NOTIFY 2 0
io_read $ISR 1
isr=$value
io_read $STATUS 1
status=$value
names=""
for bit in 1:ACKNOWLEDGE 2:DRIVER 4:DRIVER_OK 8:FEATURES_OK 128:FAILED; do
  if [ $((status & ${bit%%:*})) -ne 0 ]; then names="$names ${bit#*:}"; fi
done
printf 'status 0x%02x (%s), isr 0x%02x\n' $status "${names# }" $isr
