#!/usr/bin/env bash
# Installs what twlab needs on a fresh Debian/Ubuntu machine, and nothing it already has.
# Run as root. Used by .ci/run and by the README's two commands.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "ci/setup.sh: run as root (twlab creates network namespaces)" >&2
  exit 1
fi

# --matrix: also what `twlab matrix` needs (QEMU; the static busybox is always installed).
matrix=0
[ "${1:-}" = "--matrix" ] && matrix=1

missing=()
command -v ip >/dev/null || missing+=(iproute2)
# nft and iptables: link impairments and targeted drops run them inside the case's namespaces,
# and `twlab doctor` reports them.
command -v nft >/dev/null || missing+=(nftables)
command -v iptables >/dev/null || missing+=(iptables)
# Programs the cases under cases/programs/ run in their namespaces: busybox (httpd, wget, nc;
# one static binary), ApacheBench and curl as clients, Python's http.server as a keep-alive
# server. Small, common, and none starts a service when installed.
# The static build: `twlab matrix` also puts it in its guests' initramfs.
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
command -v ab >/dev/null || missing+=(apache2-utils)
command -v curl >/dev/null || missing+=(curl)
command -v python3 >/dev/null || missing+=(python3)
# Headless Chromium: tests/html_report.rs opens the HTML report in a real browser.
command -v chromium >/dev/null || missing+=(chromium)

if [ "$matrix" = 1 ]; then
  command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "ci/setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
elif [ "$matrix" = 1 ]; then
  # `twlab matrix` fetches kernels with apt-get download: the package lists must be current.
  apt-get update -qq
fi

command -v cargo >/dev/null || {
  echo "ci/setup.sh: cargo is missing: install a Rust toolchain (rustup) first" >&2
  exit 1
}
echo "ci/setup.sh: ready ($(uname -r), $(cargo --version))"
