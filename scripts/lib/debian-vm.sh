# shellcheck shell=bash
# The pieces the test VMs (scripts/v2vm/vm, scripts/sysvm/vm) share, sourced by them: a stock
# Debian kernel and qemu, fetched as Debian packages into a cache, a busybox initramfs, and
# the qemu command line. The caller sets VM_NAME (its messages' prefix) before sourcing.
#
# Only Debian packages are downloaded (`apt-get download`), and they are unpacked with
# `dpkg-deb -x`, never installed: installing qemu-system-x86 on a machine with a newer
# qemu-utils removes it (a Breaks:), and the host's /boot is none of our business.
# A qemu-system-x86_64 already on PATH is used as it is.
#
# Exit status 77 with a line `$VM_NAME: unavailable: REASON` on stderr means the pieces cannot
# be had here (no Debian tools, no mirror, no qemu): the test skips, or fails in CI.

die() { echo "$VM_NAME: $*" >&2; exit 1; }
unavailable() { echo "$VM_NAME: unavailable: $*" >&2; exit 77; }

# The kernel modules any of the VMs loads, kept in the kernel cache; each VM picks its own
# with module_order.
KERNEL_MODULES="fuse virtio_pci virtio_blk"

# The tools every VM needs on the host, and the cache directory locked against a second
# test run unpacking into it at the same time (held until the caller exits).
prepare_host() {
  local cache=$1 tool
  for tool in apt-get apt-cache dpkg-deb dpkg-query od; do
    command -v "$tool" >/dev/null || unavailable "$tool is not installed (not a Debian-like system)"
  done
  mkdir -p "$cache"
  if command -v flock >/dev/null; then
    exec 9> "$cache/.lock"
    flock 9
  fi
  # A machine that never ran `apt-get update` (a fresh CI machine) has no package lists, and
  # qemu's dependencies are looked up in them before anything is downloaded.
  apt-cache show linux-image-amd64 > /dev/null 2>&1 || apt_update "no package lists name linux-image-amd64"
}

# `apt-get download` into the current directory. A fresh machine (CI) has no package lists
# yet, and old lists name versions the mirror no longer has: update once and retry.
fetch() {
  local log
  # As root apt drops to the _apt user, which cannot write a root-owned cache directory.
  if log=$(apt-get download -q -o APT::Sandbox::User=root "$@" 2>&1); then return 0; fi
  apt_update "apt-get download $* failed: $(tail -n 2 <<<"$log" | tr '\n' ' ')"
  log=$(apt-get download -q -o APT::Sandbox::User=root "$@" 2>&1) ||
    unavailable "apt-get download $* failed even after apt-get update: $(tail -n 2 <<<"$log" | tr '\n' ' ')"
}

# `apt-get update`, once per run, after WHY (what failed without it).
apt_update() {
  [ -n "${APT_UPDATED:-}" ] && return 0
  [ "$(id -u)" = 0 ] || unavailable "$1; refreshing the package lists needs root"
  echo "$VM_NAME: $1; running apt-get update once" >&2
  apt-get update -qq >&2 || unavailable "apt-get update failed (no network to the Debian mirror?)"
  APT_UPDATED=1
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# Installs Debian package PKG on the host when its COMMAND is missing (as root; the package
# lists are refreshed first when the install fails).
need_program() {
  local cmd=$1 pkg=$2
  command -v "$cmd" >/dev/null && return 0
  [ "$(id -u)" = 0 ] || unavailable "$cmd is missing and installing $pkg needs root"
  echo "$VM_NAME: installing $pkg (for $cmd)" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null 2>&1; then
    apt_update "apt-get install $pkg failed"
    apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null ||
      unavailable "apt-get install $pkg failed"
  fi
  command -v "$cmd" >/dev/null || unavailable "$pkg is installed but $cmd is still missing"
}

# The uncompressed ELF kernel inside a bzImage, found as the kernel's scripts/extract-vmlinux
# does: try each compression's magic bytes and keep the first result that is an ELF file.
# qemu boots an ELF through its PVH entry point, about twice as fast under TCG as a bzImage.
extract_vmlinux() {
  local img=$1 out=$2 pair magic tool off
  for pair in '\xFD7zXZ\x00:xz -dc' '\x28\xB5\x2F\xFD:zstd -dcq' '\x1F\x8B\x08\x00:gzip -dc' \
    '\x5D\x00\x00\x00:xz -dc --format=lzma'; do
    magic=${pair%%:*}; tool=${pair#*:}
    command -v "${tool%% *}" >/dev/null || continue
    for off in $(LC_ALL=C grep -obUaP "$magic" "$img" | cut -d: -f1 | head -n 5 || true); do
      tail -c +$((off + 1)) "$img" | $tool > "$out" 2>/dev/null || true
      if [ "$(head -c 4 "$out" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]; then return 0; fi
    done
  done
  rm -f "$out"
  return 1
}

# The kernel of the meta package META (default linux-image-amd64, Debian's current kernel;
# linux-image-6.12-amd64 is another), which names the real package in its Depends. Kept in
# CACHE/kernel (CACHE/kernel-META for another META), which KERNEL names afterwards: vmlinux
# (or the bzImage when no ELF could be extracted), the release (`uname -r`), the config and
# KERNEL_MODULES with their dependencies, unpacked, in modules/ (a list of those built in, in
# modules/builtin). A cache made for another module list is made again.
prepare_kernel() {
  local cache=$1 meta=${2:-linux-image-amd64} dir
  dir=$cache/kernel
  [ "$meta" = linux-image-amd64 ] || dir=$cache/kernel-$meta
  KERNEL=$dir
  [ -f "$dir/.done" ] && [ "$(cat "$dir/wanted" 2>/dev/null)" = "$KERNEL_MODULES" ] && return 0
  local tmp=$dir.tmp
  rm -rf "$dir" "$tmp" "$dir.new"
  mkdir -p "$tmp/debs" "$tmp/root"
  ( cd "$tmp/debs" && fetch "$meta" )
  local real
  real=$(dpkg-deb -f "$tmp"/debs/"$meta"_*.deb Depends | tr ',|' '\n\n' |
    sed 's/(.*//; s/ //g' | grep -E '^linux-image-[0-9].*' | head -n 1) ||
    die "$meta names no linux-image-<version> package in its Depends"
  ( cd "$tmp/debs" && fetch "$real" )
  dpkg-deb -x "$tmp"/debs/"$real"_*.deb "$tmp/root"
  local root=$tmp/root img rel
  img=$(ls "$root"/boot/vmlinuz-* | head -n 1)
  rel=${img##*/vmlinuz-}
  mkdir -p "$dir.new/modules"
  if ! extract_vmlinux "$img" "$dir.new/vmlinux"; then
    echo "$VM_NAME: no ELF vmlinux found in $img; booting the bzImage (slower)" >&2
    cp "$img" "$dir.new/vmlinux"
  fi
  echo "$rel" > "$dir.new/release"
  cp "$root/boot/config-$rel" "$dir.new/config"
  # Debian's 6.1 builds FUSE and the virtio disk as modules (6.12 builds FUSE in). There is no
  # modules.dep in the package (depmod makes it at install), so each module's dependencies
  # come from the `depends=` string in its .modinfo section.
  local mods=$root/lib/modules/$rel
  : > "$dir.new/modules/builtin"
  unpack_module() {
    local name=$1 file dep
    [ -f "$dir.new/modules/$name.ko" ] && return 0
    grep -qx "$name" "$dir.new/modules/builtin" && return 0
    file=$(find "$mods/kernel" -name "$name.ko*" | head -n 1)
    if [ -z "$file" ]; then
      if grep -q "/$name.ko" "$mods/modules.builtin" 2>/dev/null; then
        echo "$name" >> "$dir.new/modules/builtin"
        return 0
      fi
      die "kernel $rel has module $name neither as a file nor built in"
    fi
    case $file in
      *.ko) cp "$file" "$dir.new/modules/$name.ko" ;;
      *.ko.xz) xz -dc "$file" > "$dir.new/modules/$name.ko" ;;
      *.ko.zst) zstd -dcq "$file" > "$dir.new/modules/$name.ko" ;;
      *) die "cannot unpack module $file" ;;
    esac
    for dep in $(module_deps "$dir.new/modules/$name.ko"); do unpack_module "$dep"; done
  }
  local m
  for m in $KERNEL_MODULES; do unpack_module "$m"; done
  echo "$real" > "$dir.new/package"
  echo "$KERNEL_MODULES" > "$dir.new/wanted"
  mv "$dir.new" "$dir"
  rm -rf "$tmp"
  touch "$dir/.done"
}

# The modules an unpacked module needs, from the `depends=` string of its .modinfo.
module_deps() {
  tr '\0' '\n' < "$1" | sed -n 's/^depends=//p' | tr ',-' ' _'
}

# The modules of the kernel cache DIR that loading MODULE... takes, dependencies first, one a
# line (none for one built in).
module_order() {
  local dir=$1 order=" " m
  shift
  # Appends one module after its dependencies (bash's dynamic scope: `order` is the caller's).
  module_order_add() {
    local name=$1
    case $order in *" $name "*) return 0 ;; esac
    if [ ! -f "$dir/modules/$name.ko" ]; then
      grep -qx "$name" "$dir/modules/builtin" && return 0
      die "the kernel cache has no module $name (add it to KERNEL_MODULES)"
    fi
    local dep
    for dep in $(module_deps "$dir/modules/$name.ko"); do module_order_add "$dep"; done
    order="$order$name "
  }
  for m in "$@"; do module_order_add "$m"; done
  # shellcheck disable=SC2086 # the list
  printf '%s\n' $order
}

# qemu-system-x86 and the libraries this machine lacks, unpacked into CACHE/qemu. The
# closure follows Depends: of missing packages only. qemu-system-common is taken without its
# Depends: of its modules only accel-tcg-x86_64.so is loaded (TCG is a module in Debian's
# qemu), and the display, audio and USB ones pull in some 20 libraries a -nographic guest
# never loads. ipxe-qemu (network boot ROMs) is left out: the guest has no network card.
prepare_qemu() {
  local cache=$1 dir=$1/qemu
  command -v qemu-system-x86_64 >/dev/null && return 0
  [ -f "$dir/.done" ] && return 0
  rm -rf "$dir" "$dir.tmp"
  mkdir -p "$dir.tmp/debs" "$dir.tmp/root"
  local todo="qemu-system-x86 qemu-system-data seabios" want="" seen=" " follow p
  while [ -n "$todo" ]; do
    follow=""
    for p in $todo; do
      case $seen in *" $p "*) continue ;; esac
      seen="$seen$p "
      case $p in ipxe-qemu) continue ;; esac
      [ "$p" != qemu-system-x86 ] && installed "$p" && continue
      want="$want $p"
      [ "$p" = qemu-system-common ] || follow="$follow $p"
    done
    todo=""
    # One apt-cache call per level: each call reads all the package lists (about a second).
    # shellcheck disable=SC2086 # a list of package names
    [ -n "$follow" ] && todo=$(apt-cache depends $follow 2>/dev/null |
      awk '$1 == "Depends:" || $1 == "|Depends:" { print $2 }' | grep -v '^<' | sort -u | tr '\n' ' ' || true)
  done
  # shellcheck disable=SC2086 # a list of package names
  ( cd "$dir.tmp/debs" && fetch $want )
  for deb in "$dir.tmp"/debs/*.deb; do dpkg-deb -x "$deb" "$dir.tmp/root"; done
  mv "$dir.tmp/root" "$dir"
  rm -rf "$dir.tmp"
  local missing
  missing=$(qemu_env "$cache" ldd "$dir/usr/bin/qemu-system-x86_64" "$dir"/usr/lib/x86_64-linux-gnu/qemu/accel-tcg-*.so |
    grep 'not found' | awk '{print $1}' | sort -u | tr '\n' ' ' || true)
  [ -z "$missing" ] || unavailable "the unpacked qemu-system-x86_64 still lacks libraries: $missing"
  touch "$dir/.done"
}

# The environment the unpacked qemu runs in: its libraries, and its modules' directory
# (compiled in as /usr/lib/x86_64-linux-gnu/qemu). Nothing when qemu is the host's.
qemu_vars() {
  local q=$1/qemu
  [ -d "$q/usr" ] || return 0
  echo "LD_LIBRARY_PATH=$q/usr/lib/x86_64-linux-gnu:$q/lib/x86_64-linux-gnu"
  echo "QEMU_MODULE_DIR=$q/usr/lib/x86_64-linux-gnu/qemu"
}

# Runs a command in that environment.
qemu_env() {
  local cache=$1; shift
  # shellcheck disable=SC2046 # one VAR=value a line, no spaces
  env $(qemu_vars "$cache") "$@"
}

# Copies a dynamically linked program's libraries and loader into the initramfs root.
copy_libs() {
  local root=$1 prog=$2 lib
  for lib in $(ldd "$prog" 2>/dev/null | grep -o '/[^ ]*' || true); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}

# The host's busybox, for the initramfs; unavailable without one.
host_busybox() {
  local busybox
  busybox=$(command -v busybox || true)
  [ -n "$busybox" ] || unavailable "busybox is not installed (apt-get install busybox-static)"
  echo "$busybox"
}

# Starts a busybox initramfs tree at ROOT: busybox (its applets are linked at boot by /init)
# with its libraries, and the kernel cache's modules for MODULE... with their load order in
# lib/modules/order. The caller adds /init and the rest, then calls pack_initramfs.
initramfs_root() {
  local root=$1 kernel=$2 busybox m
  shift 2
  busybox=$(host_busybox)
  rm -rf "$root"
  mkdir -p "$root"/{bin,dev,proc,sys,tmp,run,lib/modules}
  cp -L "$busybox" "$root/bin/busybox"
  copy_libs "$root" "$busybox"
  module_order "$kernel" "$@" > "$root/lib/modules/order"
  for m in $(cat "$root/lib/modules/order"); do cp "$kernel/modules/$m.ko" "$root/lib/modules/"; done
}

# Packs ROOT into the uncompressed cpio OUT (nothing to inflate at boot) and removes ROOT.
pack_initramfs() {
  local root=$1 out=$2
  ( cd "$root" && find . -mindepth 1 | "$(host_busybox)" cpio -o -H newc 2>/dev/null ) > "$out"
  rm -rf "$root"
}

# Copies PROGRAM to DEST without its debug info (a debug build is ~50 MB, which a TCG guest
# copies slowly), or as it is without `strip`.
copy_stripped() {
  if command -v strip >/dev/null; then strip -o "$2" "$1"; else cp "$1" "$2"; fi
}

# The start of the qemu command line into the array QEMU_ARGS: accelerator, machine, no
# devices but two serial ports (WORK/console.log for the kernel, WORK/payload.log for what
# the guest sends back, byte-exact), the kernel prepare_kernel chose and qemu's firmware
# directories.
# The caller adds memory, CPUs, -initrd, -append and drives, then calls write_qemu_args.
qemu_args() {
  local cache=$1 work=$2 qemu accel
  qemu=$(command -v qemu-system-x86_64 || echo "$cache/qemu/usr/bin/qemu-system-x86_64")
  # /dev/kvm can be a nested software hypervisor (no vmx/svm flag) under which a stock kernel
  # hangs: use KVM only when the CPU says it can do it.
  if grep -qwE 'vmx|svm' /proc/cpuinfo && [ -w /dev/kvm ]; then
    accel=(-accel kvm -cpu host)
  else
    accel=(-accel tcg -cpu max)
  fi
  QEMU_ARGS=(
    "$qemu" "${accel[@]}" -M pc
    -nographic -no-reboot -nodefaults -vga none -net none -monitor none
    -serial "file:$work/console.log" -serial "file:$work/payload.log"
    -kernel "$KERNEL/vmlinux"
  )
  if [ -d "$cache/qemu/usr" ]; then
    QEMU_ARGS+=(-L "$cache/qemu/usr/share/seabios" -L "$cache/qemu/usr/share/qemu")
  fi
}

# Writes QEMU_ARGS and the environment qemu needs into WORK, for boot_qemu.
write_qemu_args() {
  local cache=$1 work=$2
  printf '%s\n' "${QEMU_ARGS[@]}" > "$work/qemu.args"
  qemu_vars "$cache" > "$work/qemu.env"
}

# Execs qemu as prepared in WORK (so the caller's child pid is qemu's).
boot_qemu() {
  local work=$1 args=() vars=()
  [ -f "$work/qemu.args" ] || die "$work/qemu.args missing: run prepare first"
  mapfile -t args < "$work/qemu.args"
  rm -f "$work/console.log" "$work/payload.log"
  [ -f "$work/qemu.env" ] && mapfile -t vars < "$work/qemu.env"
  exec env "${vars[@]}" "${args[@]}"
}

# The command line every VM script takes; the script defines prepare CACHE BIN WORK.
vm_main() {
  case ${1:-} in
    prepare) [ $# = 4 ] || die "usage: $0 prepare CACHE BIN WORK"; prepare "$2" "$3" "$4" ;;
    boot) [ $# = 2 ] || die "usage: $0 boot WORK"; boot_qemu "$2" ;;
    run)
      [ $# = 4 ] || die "usage: $0 run CACHE BIN WORK"
      prepare "$2" "$3" "$4"
      ( boot_qemu "$4" ) || true
      cat "$4/payload.log"
      ;;
    *) die "usage: $0 prepare CACHE BIN WORK | boot WORK | run CACHE BIN WORK" ;;
  esac
}
