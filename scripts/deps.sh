#!/usr/bin/env bash
# Installs what lxcfs-rs needs on Debian/Ubuntu, as root.
#   scripts/deps.sh build   a C linker and a Rust toolchain (rustup when cargo is missing or too old)
#   scripts/deps.sh bench   the above, plus what scripts/bench uses: the C lxcfs (the yardstick,
#                           its service kept from starting) and fonts-dejavu-core (the font of
#                           the benchmark's PNG chart)
#   scripts/deps.sh test    the above, plus what the tests use: the C lxcfs (as a yardstick, its
#                           service kept from starting so it cannot take /var/lib/lxcfs),
#                           busybox-static (splice readers, container root filesystems),
#                           util-linux (unshare), runc, podman and lxc (real containers), systemd
#                           (systemd-analyze verifies the unit), python3 (shutil.copyfile, a
#                           sendfile reader), debootstrap (the systemd VM's root filesystem),
#                           openjdk-17-jre-headless (a JVM without container support sizing its
#                           heap through sysinfo(2), answered by the agent), docker.io (a real
#                           Docker engine, started by the tests themselves), catatonit (the
#                           pause process of `podman kube play` pods), python3-venv (the
#                           kubernetes-validate schema checker, installed under target/),
#                           fonts-dejavu-core (the benchmark's smoke test draws its chart)
set -euo pipefail
mode=${1:-build}
export PATH="$HOME/.cargo/bin:$PATH"
min_rust=1.85

[ "$(id -u)" = 0 ] || { echo "deps.sh: run as root (it installs packages)" >&2; exit 1; }

pkgs=(gcc libc6-dev ca-certificates curl)
case $mode in
  build) ;;
  bench) pkgs+=(lxcfs fonts-dejavu-core) ;;
  test) pkgs+=(lxcfs busybox-static util-linux procps runc podman lxc systemd python3 debootstrap openjdk-17-jre-headless docker.io catatonit python3-venv fonts-dejavu-core) ;;
  *) echo "deps.sh: unknown mode $mode (build, bench or test)" >&2; exit 1 ;;
esac
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Installing lxcfs would start its service on /var/lib/lxcfs, our default mount point;
  # policy-rc.d is Debian's switch for "install, don't start".
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

rust_ok() {
  command -v cargo >/dev/null 2>&1 || return 1
  local v; v=$(rustc --version | awk '{print $2}')
  [ "$(printf '%s\n%s\n' "$min_rust" "$v" | sort -V | head -n1)" = "$min_rust" ]
}
if ! rust_ok; then
  echo "deps.sh: installing a Rust toolchain with rustup (need rustc >= $min_rust)"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --component clippy,rustfmt
fi
rust_ok || { echo "deps.sh: no usable Rust toolchain (rustc >= $min_rust)" >&2; exit 1; }
