#!/usr/bin/env bash
# Installs what twlab needs on a fresh Debian/Ubuntu machine, and nothing it already has.
# Run as root. Used by .ci/run and by the README's two commands.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "ci/setup.sh: run as root (twlab creates network namespaces)" >&2
  exit 1
fi

missing=()
command -v ip >/dev/null || missing+=(iproute2)
# nft and iptables: link impairments and targeted drops run them inside the case's namespaces,
# and `twlab doctor` reports them.
command -v nft >/dev/null || missing+=(nftables)
command -v iptables >/dev/null || missing+=(iptables)

if [ ${#missing[@]} -gt 0 ]; then
  echo "ci/setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null || {
  echo "ci/setup.sh: cargo is missing: install a Rust toolchain (rustup) first" >&2
  exit 1
}
echo "ci/setup.sh: ready ($(uname -r), $(cargo --version))"
