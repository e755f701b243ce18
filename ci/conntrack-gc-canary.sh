#!/bin/bash
# Waits for the host's conntrack garbage collector to run and prints the moment (date +%s.%N).
#
# The collector is one worker for the whole host (gc_worker in nf_conntrack_core.c), so a case
# whose outcome depends on when it runs cannot choose that moment; this script lets a person
# observe it. It makes a conntrack entry with a 1 s UDP timeout in a namespace of its own
# (unshare, nothing named, gone when the script ends) and polls that namespace's count: the
# count falls to 0 only when the collector reaps the entry. On an idle host the collector then
# sleeps about 60 s, so `ci/conntrack-gc-canary.sh; sleep 57; twlab run CASE` starts CASE about
# 3 s before the next scan. That is how rates/conntrack-short-time-wait-at-rate was observed in
# each phase.
set -euo pipefail
exec unshare -n bash -c '
set -euo pipefail
ip link set lo up
nft add table ip canary
nft "add chain ip canary out { type filter hook output priority 0; }"
nft add rule ip canary out ct state new accept
echo 1 > /proc/sys/net/netfilter/nf_conntrack_udp_timeout
echo x > /dev/udp/127.0.0.1/9 || true
[ "$(cat /proc/sys/net/netfilter/nf_conntrack_count)" != 0 ] || { echo "no canary entry was made" >&2; exit 1; }
while [ "$(cat /proc/sys/net/netfilter/nf_conntrack_count)" != 0 ]; do sleep 0.01; done
echo "conntrack collector ran at $(date +%s.%N)"
'
