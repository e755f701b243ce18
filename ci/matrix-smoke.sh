#!/usr/bin/env bash
# A small kernel matrix, so the matrix path never rots: the host kernel and Debian's current
# 6.1 kernel (under QEMU/TCG), on a handful of cases: the seeds, two impairment cases (netem
# in the guest, the substitute on the host), one case that exists only from 6.14
# (skipped on 6.1 with the reason) and one whose expectations differ by kernel.
# Needs `ci/setup.sh --matrix` and a built twlab (cargo build). About a minute.
set -euo pipefail
cd "$(dirname "$0")/.."

# The newest 6.1 ABI this machine's package lists know (Debian replaces old ABIs on mirrors).
kernel=${TWLAB_MATRIX_KERNEL:-$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' \
  | cut -d' ' -f1 | sort -V | tail -1)}
if [ -z "$kernel" ]; then
  echo "ci/matrix-smoke.sh: no linux-image-6.1.0-*-amd64 in the package lists (apt-get update?)" >&2
  exit 1
fi

exec target/debug/twlab matrix --kernel "$kernel" \
  cases/seeds \
  cases/impairment/syn-loss.yaml \
  cases/impairment/lost-final-ack.yaml \
  cases/exhaustion/tw-reuse-delay.yaml \
  cases/claims/linger-zero-discards-unsent-data.yaml
