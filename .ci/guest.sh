#!/usr/bin/env bash
# Fetch and unpack the guest kit for QEMU boot tests into
# ${VMMR_CACHE:-$HOME/.cache/vmmr}/guest/:
#
#   vmlinuz          Debian 12's current linux-image-*-amd64 kernel
#   busybox          busybox from Debian 12's busybox-static (static binary)
#   modules/*.ko     the virtio modules (uncompressed) and everything they need
#   kit.json         kernel version, packages, and per module its file and
#                    direct dependencies (what test/support/guest.ts reads)
#
# Idempotent: a complete kit is reused without touching the network
# (VMMR_GUEST_REFRESH=1 re-resolves the current bookworm kernel). Also makes
# sure the host tools the boot tests use are installed: fdisk (sfdisk, for
# disk images) and kmod (depmod/modinfo, used here). The initramfs itself is
# written by test/support/guest.ts, which needs no cpio.
#
# The last line on stdout is the kit directory; progress goes to stderr.
# VMMR_GUEST_MODULES="a b" adds modules to the default list.
set -euo pipefail

CACHE=${VMMR_CACHE:-$HOME/.cache/vmmr}
KIT=$CACHE/guest
LAYOUT="guest kit layout 1"
MODULES=(
  virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci
  failover net_failover virtio_net virtio_blk
)
# shellcheck disable=SC2206
MODULES+=(${VMMR_GUEST_MODULES:-})
HOST_PKGS=(fdisk kmod)

log() { printf 'guest.sh: %s\n' "$*" >&2; }
die() {
  printf '\nguest.sh: ERROR: %s\n' "$*" >&2
  exit 1
}

kit_ok() {
  local m
  [ -f "$KIT/.vmmr-complete" ] && [ "$(cat "$KIT/.vmmr-complete")" = "$LAYOUT ${MODULES[*]}" ] &&
    [ -s "$KIT/vmlinuz" ] && [ -x "$KIT/busybox" ] && [ -s "$KIT/kit.json" ] || return 1
  for m in "${MODULES[@]}"; do
    grep -q "\"$m\"" "$KIT/kit.json" || return 1
  done
}

host_tools_ok() {
  command -v sfdisk >/dev/null 2>&1 && command -v depmod >/dev/null 2>&1
}

mkdir -p "$CACHE"
exec 9>"$CACHE/.guest.lock"
flock 9

if [ "${VMMR_GUEST_REFRESH:-0}" != 1 ] && kit_ok && host_tools_ok; then
  log "reusing $KIT ($(sed -n 's/.*"kernelVersion": *"\([^"]*\)".*/\1/p' "$KIT/kit.json"), ${SECONDS}s)"
  printf '%s\n' "$KIT"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  die "not root and no sudo: apt-get cannot install ${HOST_PKGS[*]}"
fi
APT=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=600)
command -v apt-get >/dev/null 2>&1 || die "apt-get not found: this script needs Debian 12"

log "apt-get update"
"${APT[@]}" update >&2 || die "apt-get update failed (is the Debian mirror reachable?)"
if ! host_tools_ok; then
  log "installing ${HOST_PKGS[*]}"
  "${APT[@]}" install --no-install-recommends "${HOST_PKGS[@]}" >&2 ||
    die "apt-get install ${HOST_PKGS[*]} failed"
  host_tools_ok || die "sfdisk or depmod still missing after installing ${HOST_PKGS[*]}"
fi
# depmod lives in /sbin, which a non-root PATH may lack.
DEPMOD=$(command -v depmod || echo /sbin/depmod)
MODINFO=$(command -v modinfo || echo /sbin/modinfo)

if kit_ok && [ "${VMMR_GUEST_REFRESH:-0}" != 1 ]; then
  printf '%s\n' "$KIT"
  exit 0
fi

# The kernel package the bookworm metapackage points at now.
meta=$(apt-cache policy linux-image-amd64 | awk '/Candidate:/ {print $2}')
[ -n "$meta" ] && [ "$meta" != "(none)" ] || die "apt knows no linux-image-amd64 (no bookworm entry in apt's sources?)"
KPKG=$(apt-cache show "linux-image-amd64=$meta" |
  sed -n 's/^Depends: .*\(linux-image-[0-9][^ ,]*-amd64\).*/\1/p' | head -n1)
[ -n "$KPKG" ] || die "cannot tell which kernel package linux-image-amd64 $meta depends on"
BBPKG=busybox-static
log "kernel package: $KPKG (linux-image-amd64 $meta)"

WORK=$(mktemp -d "$CACHE/.guest-work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && apt-get download -q "$KPKG" "$BBPKG" >&2) ||
  die "apt-get download $KPKG $BBPKG failed"
KDEB=$(ls "$WORK"/linux-image-*.deb)
BBDEB=$(ls "$WORK"/busybox-static_*.deb)
KVER_PKG=$(dpkg-deb -f "$KDEB" Version)
BBVER=$(dpkg-deb -f "$BBDEB" Version)
log "unpacking $(basename "$KDEB") and $(basename "$BBDEB")"
dpkg-deb -x "$KDEB" "$WORK/k"
dpkg-deb -x "$BBDEB" "$WORK/bb"

KVER=$(ls "$WORK/k/lib/modules" | head -n1)
[ -n "$KVER" ] || die "$KDEB has no lib/modules/<version>"
MODROOT=$WORK/k/lib/modules/$KVER
VMLINUZ=$WORK/k/boot/vmlinuz-$KVER
[ -s "$VMLINUZ" ] || die "$KDEB has no boot/vmlinuz-$KVER"
[ -x "$WORK/bb/bin/busybox" ] || die "$BBDEB has no bin/busybox"

# The package ships no modules.dep (its postinst runs depmod): make one.
"$DEPMOD" -b "$WORK/k" "$KVER" || die "depmod on the unpacked $KPKG failed"

NEW=$KIT.new
rm -rf "$NEW"
mkdir -p "$NEW/modules"
cp "$VMLINUZ" "$NEW/vmlinuz"
cp "$WORK/bb/bin/busybox" "$NEW/busybox"
chmod 755 "$NEW/busybox"

# module name (dashes as underscores) -> path in modules.dep
declare -A PATH_OF=()
while IFS=: read -r path _; do
  base=${path##*/}
  name=${base%%.ko*}
  PATH_OF[${name//-/_}]=$path
done <"$MODROOT/modules.dep"

declare -A DONE=()
BUILTIN=()
COMPRESSION=none
want() {
  local name=${1//-/_} path base deps dep
  [ -n "${DONE[$name]:-}" ] && return 0
  DONE[$name]=1
  path=${PATH_OF[$name]:-}
  if [ -z "$path" ]; then
    if grep -q "/${name}.ko\$\|/${1}.ko\$" "$MODROOT/modules.builtin" 2>/dev/null; then
      BUILTIN+=("$name")
      return 0
    fi
    die "module $1 is neither a module nor built into $KVER"
  fi
  base=${path##*/}
  case "$base" in
    *.ko) cp "$MODROOT/$path" "$NEW/modules/$name.ko" ;;
    *.ko.xz) COMPRESSION=xz && xz -dc "$MODROOT/$path" >"$NEW/modules/$name.ko" ;;
    *.ko.zst) COMPRESSION=zstd && zstd -qdc "$MODROOT/$path" >"$NEW/modules/$name.ko" ;;
    *.ko.gz) COMPRESSION=gzip && gzip -dc "$MODROOT/$path" >"$NEW/modules/$name.ko" ;;
    *) die "module file $base has an unknown suffix" ;;
  esac
  deps=$("$MODINFO" -F depends "$NEW/modules/$name.ko" | tr ',' ' ')
  printf '%s %s\n' "$name" "$deps" >>"$WORK/deps.txt"
  for dep in $deps; do want "$dep"; done
}
: >"$WORK/deps.txt"
for m in "${MODULES[@]}"; do want "$m"; done

# kit.json, by hand (no jq needed).
{
  printf '{\n'
  printf '  "kernelVersion": "%s",\n' "$KVER"
  printf '  "kernelPackage": "%s",\n' "$KPKG=$KVER_PKG"
  printf '  "busyboxPackage": "%s",\n' "$BBPKG=$BBVER"
  printf '  "moduleCompression": "%s",\n' "$COMPRESSION"
  printf '  "builtin": ['
  sep=
  for b in "${BUILTIN[@]}"; do printf '%s"%s"' "$sep" "$b" && sep=', '; done
  printf '],\n'
  printf '  "modules": {\n'
  sep=
  while read -r name deps; do
    printf '%s    "%s": { "file": "modules/%s.ko", "depends": [' "$sep" "$name" "$name"
    dsep=
    for d in $deps; do printf '%s"%s"' "$dsep" "${d//-/_}" && dsep=', '; done
    printf '] }'
    sep=$',\n'
  done <"$WORK/deps.txt"
  printf '\n  }\n}\n'
} >"$NEW/kit.json"
printf '%s\n' "$LAYOUT ${MODULES[*]}" >"$NEW/.vmmr-complete"

rm -rf "$KIT"
mv "$NEW" "$KIT"
log "kit for $KVER ($KPKG=$KVER_PKG, modules compressed: $COMPRESSION, $(ls "$KIT/modules" | wc -l) modules) in ${SECONDS}s"
printf '%s\n' "$KIT"
