#!/usr/bin/env bash
# Build QEMU 10.2 (x86_64-softmmu only) from Debian's sid source package and
# cache it outside the clone, in ${VMMR_CACHE:-$HOME/.cache/vmmr}/qemu-<ver>/:
#
#   bin/qemu-system-x86_64   the binary (has the vfio-user-pci client device)
#   share/qemu/              firmware for -L: Debian 12's seabios and ipxe-qemu
#                            files plus the option ROMs built with QEMU
#                            (linuxboot_dma.bin for -kernel)
#
# Idempotent: a run that finds a complete, working cache only checks it and
# prints the path (a few seconds). Otherwise it installs what it needs with
# apt-get (build dependencies from Debian 12; meson >= 1.5 and python3-pycotap
# from sid through a temporary, low-pinned `deb` entry; nothing else is taken
# from sid), downloads the sid source package, applies Debian's patches,
# configures and runs `ninja qemu-system-x86_64`.
#
# The last line on stdout is the absolute path of the binary; progress goes to
# stderr. Environment:
#   VMMR_CACHE             cache root (default $HOME/.cache/vmmr)
#   VMMR_QEMU_BUILD_DIR    build directory (default $VMMR_CACHE/build/qemu-<ver>)
#   VMMR_QEMU_DEB_VERSION  Debian source version (default 1:10.2.2+ds-1)
#   VMMR_KEEP_BUILD=1      keep the build tree after a successful build
#   VMMR_JOBS              ninja -j (default: nproc)
set -euo pipefail

DEB_VERSION=${VMMR_QEMU_DEB_VERSION:-1:10.2.2+ds-1}
# 1:10.2.2+ds-1 -> 10.2.2
UPSTREAM=${DEB_VERSION#*:}
UPSTREAM=${UPSTREAM%%+*}
UPSTREAM=${UPSTREAM%-*}
CACHE=${VMMR_CACHE:-$HOME/.cache/vmmr}
PREFIX=$CACHE/qemu-$UPSTREAM
BIN=$PREFIX/bin/qemu-system-x86_64
FIRMWARE=$PREFIX/share/qemu
STAMP=$PREFIX/.vmmr-complete
BUILD_ROOT=${VMMR_QEMU_BUILD_DIR:-$CACHE/build/qemu-$UPSTREAM}
JOBS=${VMMR_JOBS:-$(nproc)}

# What ends up in the stamp: a cache made with other settings is rebuilt.
CONFIGURE_FLAGS=(
  --target-list=x86_64-softmmu
  --python=/usr/bin/python3
  --disable-docs
  --disable-werror
  --disable-gtk
  --disable-sdl
  --disable-vnc
  --disable-opengl
  --disable-spice
  --disable-rust
  --enable-slirp
  --disable-user
  --disable-download
  --disable-install-blobs
)
STAMP_TEXT="qemu $DEB_VERSION; ${CONFIGURE_FLAGS[*]}; layout 1"

# Build dependencies, all from Debian 12 (bookworm).
# gcc-multilib: the x86 option ROMs (linuxboot_dma.bin, which -kernel needs)
# are built with cc -m32 and need the 32-bit libgcc.
BUILD_DEPS=(
  build-essential gcc-multilib pkg-config ninja-build python3-venv flex bison
  libglib2.0-dev libpixman-1-dev libslirp-dev zlib1g-dev
  xz-utils patch dpkg-dev
)
# The only packages that may come from sid.
SID_PKGS=(meson python3-pycotap)
MESON_MIN=1.5

SID_SOURCES=/etc/apt/sources.list.d/vmmr-sid.sources
SID_PIN=/etc/apt/preferences.d/vmmr-sid

log() { printf 'qemu.sh: %s\n' "$*" >&2; }
die() {
  printf '\nqemu.sh: ERROR: %s\n' "$*" >&2
  exit 1
}

# ---------------------------------------------------------------------------
# The cache check (the warm path).
cache_ok() {
  [ -x "$BIN" ] && [ -f "$STAMP" ] && [ -f "$FIRMWARE/bios-256k.bin" ] &&
    [ -f "$FIRMWARE/linuxboot_dma.bin" ] || return 1
  [ "$(cat "$STAMP")" = "$STAMP_TEXT" ] || return 1
  "$BIN" -version >/dev/null 2>&1 || return 1
  "$BIN" -device help 2>/dev/null | grep -q '"vfio-user-pci"' || return 1
}

finish() {
  log "ready: $("$BIN" -version | head -n1) (in ${SECONDS}s)"
  printf '%s\n' "$BIN"
  exit 0
}

mkdir -p "$CACHE"
# One build at a time per cache (two test runs starting together).
exec 9>"$CACHE/.qemu.lock"
flock 9

if cache_ok; then
  finish
fi
if [ -x "$BIN" ]; then
  log "cache at $PREFIX is incomplete, stale or does not run; rebuilding"
fi

# ---------------------------------------------------------------------------
# Privileges and apt.
if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  die "not root and no sudo: apt-get cannot install the build dependencies"
fi
APT=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Use-Pty=0)
command -v apt-get >/dev/null 2>&1 || die "apt-get not found: this script needs Debian 12"

ADDED_SID=0
remove_sid() {
  # The sid entry and its pin only ever exist together, and only while this
  # script runs: removing both is safe (what came from sid stays installed;
  # apt stops reading sid's lists once the entry is gone).
  if [ "$ADDED_SID" -eq 1 ]; then
    "${SUDO[@]}" rm -f "$SID_SOURCES" "$SID_PIN"
    ADDED_SID=0
    log "removed the temporary sid apt entry and pin"
  fi
}
trap remove_sid EXIT

add_sid() {
  if [ -e "$SID_SOURCES" ] || [ -e "$SID_PIN" ]; then
    # Left by an earlier run that was killed: ours, same content.
    log "found $SID_SOURCES / $SID_PIN from an interrupted run; rewriting them"
  fi
  # Pin first, so there is never a moment with sid unpinned.
  "${SUDO[@]}" tee "$SID_PIN" >/dev/null <<'EOF'
# Added by vmmr's .ci/qemu.sh while it builds QEMU; removed when it ends.
# Nothing is taken from sid unless asked for by name (pkg/sid).
Package: *
Pin: release n=sid
Pin-Priority: 1
EOF
  "${SUDO[@]}" tee "$SID_SOURCES" >/dev/null <<'EOF'
# Added by vmmr's .ci/qemu.sh while it builds QEMU; removed when it ends.
Types: deb deb-src
URIs: http://deb.debian.org/debian
Suites: sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  ADDED_SID=1
}

version_ge() { dpkg --compare-versions "$1" ge "$2"; }

meson_ok() {
  local v
  v=$(dpkg-query -W -f='${Version}' meson 2>/dev/null) || return 1
  [ -n "$v" ] && version_ge "$v" "$MESON_MIN" &&
    dpkg-query -W -f='${Status}' python3-pycotap 2>/dev/null | grep -q 'install ok installed'
}

missing_build_deps() {
  local p out=()
  for p in "${BUILD_DEPS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || out+=("$p")
  done
  printf '%s\n' "${out[@]}"
}

install_deps() {
  local missing
  missing=$(missing_build_deps)
  if [ -n "$missing" ]; then
    log "installing from Debian 12: $(echo $missing)"
    # shellcheck disable=SC2086
    "${APT[@]}" install --no-install-recommends $missing >&2 ||
      die "apt-get install of the build dependencies failed: $(echo $missing)"
  fi
  if ! meson_ok; then
    local targets=() p sim bad
    for p in "${SID_PKGS[@]}"; do targets+=("$p/sid"); done
    # Dry run first: refuse if apt would take anything else from sid.
    sim=$("${APT[@]}" install -s --no-install-recommends "${targets[@]}" 2>&1) ||
      die "apt-get cannot install ${SID_PKGS[*]} from sid:
$sim"
    bad=$(printf '%s\n' "$sim" | awk '/^Inst / && /unstable/ {print $2}' |
      grep -vxF -e meson -e python3-pycotap || true)
    if [ -n "$bad" ]; then
      die "installing ${SID_PKGS[*]} from sid would also take these from sid: $(echo $bad); refusing"
    fi
    log "installing from sid (only these): ${SID_PKGS[*]}"
    "${APT[@]}" install --no-install-recommends "${targets[@]}" >&2 ||
      die "apt-get install ${targets[*]} failed"
    meson_ok || die "meson >= $MESON_MIN is still not installed"
  fi
}

# ---------------------------------------------------------------------------
log "no usable cache at $PREFIX: building QEMU $DEB_VERSION (10-17 minutes on 2 cores)"
add_sid
log "apt-get update"
"${APT[@]}" update >&2 || die "apt-get update failed (is the Debian mirror reachable?)"
install_deps

# The deps may have been the only thing wrong with an existing cache.
if cache_ok; then
  finish
fi

mkdir -p "$BUILD_ROOT"
DL=$BUILD_ROOT/download
mkdir -p "$DL"
if [ ! -f "$DL/.complete" ] || [ "$(cat "$DL/.complete")" != "$DEB_VERSION" ]; then
  rm -rf "$DL" && mkdir -p "$DL"
  log "downloading source package qemu=$DEB_VERSION from sid"
  if ! (cd "$DL" && apt-get source --download-only -q "qemu=$DEB_VERSION" >&2); then
    avail=$(apt-cache showsrc qemu 2>/dev/null | awk '/^Version:/ {print $2}' | sort -u | tr '\n' ' ')
    die "source package qemu=$DEB_VERSION is not on the mirror (sid now has: ${avail:-none}).
Set VMMR_QEMU_DEB_VERSION to one of those (>= 10.1 has vfio-user-pci) and re-run."
  fi
  printf '%s\n' "$DEB_VERSION" >"$DL/.complete"
fi
# Everything from sid is in hand: drop the entry now rather than at exit.
remove_sid

ORIG=$(ls "$DL"/qemu_*.orig.tar.* 2>/dev/null | grep -v '\.asc$' | head -n1 || true)
DEBTAR=$(ls "$DL"/qemu_*.debian.tar.* 2>/dev/null | head -n1 || true)
[ -n "$ORIG" ] && [ -n "$DEBTAR" ] || die "source download in $DL is incomplete (no orig or debian tarball)"

SRC=$BUILD_ROOT/src
BUILD=$BUILD_ROOT/build
ROMDIR=$BUILD/pc-bios/optionrom
# A build tree left by an earlier run with the same settings (one that failed
# after configure, or VMMR_KEEP_BUILD=1) is reused: ninja then only does what
# is left.
if [ -f "$BUILD/.vmmr-configured" ] && [ "$(cat "$BUILD/.vmmr-configured")" = "$STAMP_TEXT" ] &&
  [ -f "$BUILD/build.ninja" ] && [ -f "$ROMDIR/config.mak" ]; then
  log "reusing the configured build tree in $BUILD"
else
  rm -rf "$SRC" "$BUILD"
  mkdir -p "$SRC" "$BUILD"
  log "unpacking $(basename "$ORIG") and $(basename "$DEBTAR")"
  tar -xf "$ORIG" -C "$SRC" --strip-components=1
  tar -xf "$DEBTAR" -C "$SRC"
  [ -f "$SRC/debian/patches/series" ] || die "no debian/patches/series in $DEBTAR"
  n=0
  while read -r patch_name _; do
    case "$patch_name" in '' | '#'*) continue ;; esac
    patch -d "$SRC" -p1 --batch --quiet --forward <"$SRC/debian/patches/$patch_name" >&2 ||
      die "Debian patch $patch_name does not apply"
    n=$((n + 1))
  done <"$SRC/debian/patches/series"
  log "applied $n Debian patches"

  log "configure ${CONFIGURE_FLAGS[*]}"
  if ! (cd "$BUILD" && "$SRC/configure" "${CONFIGURE_FLAGS[@]}" >"$BUILD_ROOT/configure.log" 2>&1); then
    tail -n 40 "$BUILD_ROOT/configure.log" >&2
    die "configure failed; full log: $BUILD_ROOT/configure.log"
  fi
  # configure sets up the option ROM build only when cc -m32 links against libgcc.
  [ -f "$ROMDIR/config.mak" ] ||
    die "configure found no compiler for the x86 option ROMs (is gcc-multilib installed?); see $BUILD/config.log"
  printf '%s\n' "$STAMP_TEXT" >"$BUILD/.vmmr-configured"
fi

log "ninja -j$JOBS qemu-system-x86_64 (log: $BUILD_ROOT/ninja.log)"
build_start=$SECONDS
if ! ninja -C "$BUILD" -j "$JOBS" qemu-system-x86_64 >"$BUILD_ROOT/ninja.log" 2>&1; then
  tail -n 40 "$BUILD_ROOT/ninja.log" >&2
  die "ninja qemu-system-x86_64 failed; full log: $BUILD_ROOT/ninja.log"
fi
# The x86 option ROMs are a make sub-project, not part of the ninja build.
if ! make -C "$ROMDIR" -j "$JOBS" TARGET_DIR=pc-bios/optionrom/ >"$BUILD_ROOT/optionrom.log" 2>&1; then
  tail -n 40 "$BUILD_ROOT/optionrom.log" >&2
  die "building the x86 option ROMs failed; full log: $BUILD_ROOT/optionrom.log"
fi
log "built in $((SECONDS - build_start))s"

# ---------------------------------------------------------------------------
# Assemble the cache next to it, then swap it in.
NEW=$PREFIX.new
rm -rf "$NEW"
mkdir -p "$NEW/bin" "$NEW/share/qemu"
cp "$BUILD/qemu-system-x86_64" "$NEW/bin/"
for r in linuxboot_dma.bin linuxboot.bin multiboot_dma.bin multiboot.bin pvh.bin kvmvapic.bin; do
  cp "$ROMDIR/$r" "$NEW/share/qemu/" || die "option ROM $r was not built"
done

FW=$BUILD_ROOT/firmware
rm -rf "$FW"
mkdir -p "$FW"
log "fetching Debian 12's seabios and ipxe-qemu for the firmware directory"
(cd "$FW" && apt-get download -q seabios/bookworm ipxe-qemu/bookworm >&2) ||
  die "apt-get download seabios ipxe-qemu failed"
for deb in "$FW"/*.deb; do dpkg-deb -x "$deb" "$FW/root"; done
# seabios: bios.bin, bios-256k.bin, vgabios-*.bin; ipxe-qemu: efi-*.rom, pxe-*.rom
find "$FW/root/usr/share/seabios" -maxdepth 1 -name '*.bin' -exec cp -L {} "$NEW/share/qemu/" \;
find "$FW/root/usr/lib/ipxe/qemu" -maxdepth 1 -name '*.rom' -exec cp -L {} "$NEW/share/qemu/" \;
for f in bios-256k.bin bios.bin vgabios-stdvga.bin efi-e1000e.rom efi-virtio.rom linuxboot_dma.bin; do
  [ -s "$NEW/share/qemu/$f" ] || die "firmware file $f is missing from the assembled directory"
done
printf '%s\n' "$STAMP_TEXT" >"$NEW/.vmmr-complete"

rm -rf "$PREFIX"
mv "$NEW" "$PREFIX"
rm -rf "$FW"
if [ "${VMMR_KEEP_BUILD:-0}" != 1 ]; then
  rm -rf "$SRC" "$BUILD"
fi

cache_ok || die "the freshly built QEMU at $BIN does not run or lacks vfio-user-pci"
finish
