#!/usr/bin/env bash
# Soak: does any verdict depend on what runs beside it? Runs, as root:
#   1. the reproduction of issue 11: many copies of restart/reuseaddr (whose relisten-both
#      bind fails if a closed listener lives on in some forked child) beside cases that each
#      start /bin/true hundreds of times, `twlab run -j 4`;
#   2. the whole suite N times in parallel, through `cargo test` and through `twlab run -j 4`
#      with the spawning cases beside it;
# and prints every trial whose verdict changed between runs (and every failure).
#
#   ci/soak.sh [RUNS]          RUNS (default 10) of each; TWLAB_SOAK_COPIES (60) copies,
#                              TWLAB_SOAK_SPAWNS (1500) programs per spawning case beside
#                              them, TWLAB_SOAK_SUITE_SPAWNS (6000) beside the suite
# Exit 1 if any verdict changed or any trial failed. About 3 minutes a run (measured: 10 s
# reproduction, 50-60 s cargo test, 60-110 s twlab run -j 4 with the spawners), plus one
# release build.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-10}
copies=${TWLAB_SOAK_COPIES:-60}
spawns=${TWLAB_SOAK_SPAWNS:-1500}
suite_spawns=${TWLAB_SOAK_SUITE_SPAWNS:-6000}
out=target/twlab/soak
rm -rf "$out"
mkdir -p "$out/repro" "$out/spawners" "$out/results"

# Spawning cases: a repeat of a foreground /bin/true in the client namespace. Named so that
# trials run in an order that interleaves them with the reuseaddr copies (two start first,
# the others come between copies), as `twlab run` takes trials in name order.
spawner() {
  cat > "$1" <<EOF
name: spawn $spawns programs
description: >
  Soak helper: starts /bin/true $spawns times in the client namespace, so that programs are
  being forked while the other cases close their sockets.
topology: pair
steps:
  - repeat:
      times: $spawns
      steps:
        - exec: {on: client, argv: [/bin/true], label: spawn}
expect:
  - program: spawn
    exit: 0
EOF
}
for i in $(seq -w 1 "$copies"); do
  cp cases/restart/reuseaddr.yaml "$out/repro/r-$i.yaml"
done
spawner "$out/repro/a-spawn-1.yaml"
spawner "$out/repro/a-spawn-2.yaml"
for q in 1 2 3 4; do
  spawner "$out/repro/r-$(printf %02d $((copies * q / 5)))-spawn.yaml"
done
# Beside the whole suite: two long spawners, given first, keep two of the four workers
# forking for most of the run.
spawns=$suite_spawns spawner "$out/spawners/spawn-1.yaml"
spawns=$suite_spawns spawner "$out/spawners/spawn-2.yaml"

cargo build --release --locked --quiet
twlab=target/release/twlab

# Per trial and run: "name status" lines, from twlab's JSON or libtest's output.
from_json() {
  python3 -c '
import json, sys
for t in json.load(open(sys.argv[1]))["trials"]:
    print(t["name"], t["status"])' "$1"
}

status=0
echo "soak: 1. reproduction: $copies x restart/reuseaddr beside 6 x $spawns spawns, -j 4, $runs runs"
for r in $(seq 1 "$runs"); do
  "$twlab" run -j 4 --json "$out/results/repro-$r.json" "$out/repro" > "$out/results/repro-$r.txt" 2>&1 || true
  from_json "$out/results/repro-$r.json" > "$out/results/repro-$r.status"
  failed=$(grep -vc " passed$" "$out/results/repro-$r.status" || true)
  total=$(wc -l < "$out/results/repro-$r.status")
  echo "  run $r: $failed of $total trials not passed"
  [ "$failed" = 0 ] || status=1
done

echo "soak: 2. the whole suite, $runs times through cargo test and twlab run -j 4 (spawning cases beside)"
cargo test --release --locked --quiet --test cases --no-run 2>/dev/null
for r in $(seq 1 "$runs"); do
  TWLAB_STRICT=1 cargo test --release --locked --quiet --test cases > "$out/results/test-$r.txt" 2>&1 || true
  sed -n 's/^test \(.*\) \.\.\. \(ok\|FAILED\|ignored.*\)$/\1 \2/p' "$out/results/test-$r.txt" \
    | sed 's/ ignored.*/ ignored/' | sort > "$out/results/test-$r.status"
  "$twlab" run -j 4 --json "$out/results/run-$r.json" "$out/spawners" cases > "$out/results/run-$r.txt" 2>&1 || true
  from_json "$out/results/run-$r.json" | sort > "$out/results/run-$r.status"
  echo "  run $r: cargo test $(tail -c 300 "$out/results/test-$r.txt" | grep -o '[0-9]* passed; [0-9]* failed; [0-9]* ignored' | tail -1)," \
    "twlab run $(grep -c " passed$" "$out/results/run-$r.status") passed of $(wc -l < "$out/results/run-$r.status")"
done

echo "soak: verdicts that changed between runs, or were not a pass:"
changed=$(python3 - "$out/results" <<'PY'
import collections, glob, os, sys
d = sys.argv[1]
for kind in ("repro", "test", "run"):
    seen = collections.defaultdict(collections.Counter)
    for f in sorted(glob.glob(os.path.join(d, f"{kind}-*.status"))):
        for line in open(f):
            name, status = line.rsplit(" ", 1)
            seen[name][status.strip()] += 1
    for name, statuses in sorted(seen.items()):
        bad = {s for s in statuses if s not in ("passed", "ok", "ignored")}
        if len(statuses) > 1 or bad:
            counts = ", ".join(f"{s} x{n}" for s, n in statuses.most_common())
            print(f"  {kind:5} {name}: {counts}")
PY
)
if [ -n "$changed" ]; then
  echo "$changed"
  status=1
else
  echo "  none"
fi
echo "soak: reports in $out/results"
exit "$status"
