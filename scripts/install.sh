#!/usr/bin/env bash
# Builds lxcfs-rs and installs it as a host service, as root:
#   scripts/install.sh               build, install, then start it (systemd when it runs here)
#   scripts/install.sh --no-start    build and install only
#   scripts/install.sh --binary FILE install FILE instead of building
#   scripts/install.sh --no-systemd  start it detached even where systemd runs
# Installs: $PREFIX/bin/lxcfs-rs, the systemd unit in $UNITDIR, the LXC mount hook and the OCI
# hook config in $PREFIX/share/lxcfs-rs, the README in $PREFIX/share/doc/lxcfs-rs.
# PREFIX defaults to /usr/local, UNITDIR to /etc/systemd/system, MOUNTPOINT to /var/lib/lxcfs;
# without systemd, PIDFILE (/run/lxcfs-rs.pid) and LOGFILE (/var/log/lxcfs-rs.log) are used.
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=${PREFIX:-/usr/local}
UNITDIR=${UNITDIR:-/etc/systemd/system}
MOUNTPOINT=${MOUNTPOINT:-/var/lib/lxcfs}
start=1
systemd=1
binary=
while [ $# -gt 0 ]; do
  case $1 in
    --no-start) start=0 ;;
    --no-systemd) systemd=0 ;;
    --binary) binary=${2:?--binary needs a file}; shift ;;
    *) echo "install.sh: unknown argument $1 (see the top of $0)" >&2; exit 2 ;;
  esac
  shift
done
die() { echo "install.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (it installs into $PREFIX and starts a service)"

if [ -z "$binary" ]; then
  scripts/deps.sh build
  export PATH="$HOME/.cargo/bin:$PATH"
  cargo build --release --locked
  binary=target/release/lxcfs-rs
fi
[ -x "$binary" ] || die "$binary is not an executable"

bin=$PREFIX/bin/lxcfs-rs
share=$PREFIX/share/lxcfs-rs
# Point the packaged files at where things really went.
fix_paths() {
  sed -e "s|/usr/local/bin/lxcfs-rs|$bin|g" \
      -e "s|/usr/local/share/lxcfs-rs|$share|g" \
      -e "s|/usr/local/share/doc/lxcfs-rs|$PREFIX/share/doc/lxcfs-rs|g" \
      -e "s|/var/lib/lxcfs|$MOUNTPOINT|g" "$1"
}
# A running binary cannot be overwritten in place (ETXTBSY): write beside it, then rename.
install -d "$PREFIX/bin" "$share" "$PREFIX/share/doc/lxcfs-rs" "$UNITDIR"
install -m755 "$binary" "$bin.new" && mv -f "$bin.new" "$bin"
fix_paths packaging/systemd/lxcfs-rs.service > "$UNITDIR/lxcfs-rs.service"
fix_paths packaging/systemd/lxcfs-rs-seccomp.service > "$UNITDIR/lxcfs-rs-seccomp.service"
fix_paths packaging/lxc/lxc.mount.hook > "$share/lxc.mount.hook"
chmod 755 "$share/lxc.mount.hook"
fix_paths packaging/lxc/00-lxcfs-rs.conf > "$share/00-lxcfs-rs.conf"
fix_paths packaging/oci/lxcfs-rs-hook.json > "$share/lxcfs-rs-hook.json"
install -m644 README.md "$PREFIX/share/doc/lxcfs-rs/README.md"
echo "install.sh: installed $bin, $UNITDIR/lxcfs-rs.service, $UNITDIR/lxcfs-rs-seccomp.service (not enabled) and the hooks in $share"
[ "$start" = 1 ] || exit 0

mounted() {
  awk -v m="$MOUNTPOINT" '{ split($0, a, " - "); split(a[2], t, " ") }
    $5 == m && t[1] ~ /^fuse/ { found = 1 } END { exit !found }' /proc/self/mountinfo
}
if [ "$systemd" = 1 ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  if systemctl is-active --quiet lxcfs.service; then
    echo "install.sh: lxcfs.service serves $MOUNTPOINT now; lxcfs-rs replaces it (Conflicts=)"
  fi
  # A restart remounts: containers started earlier keep a dead mount until they restart.
  systemctl enable lxcfs-rs.service
  systemctl restart lxcfs-rs.service
  # The seccomp agent runs only where an operator enabled it; a running one picks up the new
  # binary (its containers' listeners come back from systemd's store).
  systemctl try-restart lxcfs-rs-seccomp.service
  systemctl is-active --quiet lxcfs-rs.service || die "lxcfs-rs.service did not start: journalctl -u lxcfs-rs"
else
  # No systemd (a container, a minimal VM): run it detached, with a pidfile to stop it by.
  pidfile=${PIDFILE:-/run/lxcfs-rs.pid}
  old=$(cat "$pidfile" 2>/dev/null || true)
  # Only an lxcfs-rs is stopped: a stale pidfile's pid may belong to anything by now.
  if [ -n "$old" ] && [ "$(cat "/proc/$old/comm" 2>/dev/null)" = lxcfs-rs ]; then
    echo "install.sh: stopping the running lxcfs-rs (pid $old)"
    kill -TERM "$old"
    for _ in $(seq 50); do kill -0 "$old" 2>/dev/null || break; sleep 0.1; done
  fi
  log=${LOGFILE:-/var/log/lxcfs-rs.log}
  setsid "$bin" -p "$pidfile" "$MOUNTPOINT" >>"$log" 2>&1 </dev/null &
  echo "install.sh: no systemd here; started $bin (pid $!), log $log, stop with: kill \$(cat $pidfile)"
fi
for _ in $(seq 50); do mounted && break; sleep 0.1; done
mounted || die "$MOUNTPOINT is not mounted; see the log"
echo "install.sh: serving $MOUNTPOINT. Containers: docker run \$($bin bind-args $MOUNTPOINT) IMAGE"
