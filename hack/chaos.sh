#!/usr/bin/env bash
# `make chaos`: the fault campaign of tests/integration/fault_campaign.rs over many seeds, longer than
# the one run `make test` makes. Each seed runs in its own private environment.
#
#   make chaos                               CHAOS_SEEDS runs (default 10) of CHAOS_ROUNDS
#                                            rounds (default 14: every fault twice)
#   CHAOS_SEED_LIST="17 42" make chaos       replay these seeds
#
# Every run's output goes to target/chaos/<seed>.log; the summary, with the seeds that
# failed and how to replay them, is printed at the end and kept in target/chaos/summary.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
hack/prereqs.sh
out=target/chaos
mkdir -p "$out"
rounds=${CHAOS_ROUNDS:-14}
if [ -n "${CHAOS_SEED_LIST:-}" ]; then
  read -r -a seeds <<< "$CHAOS_SEED_LIST"
else
  seeds=()
  for _ in $(seq 1 "${CHAOS_SEEDS:-10}"); do seeds+=("$(od -An -N6 -tu8 /dev/urandom | tr -d ' ')"); done
fi

# Build once and run copies: a rebuild while the campaign runs changes nothing.
exe=$(cargo test --all-features --locked --test integration --no-run --message-format=json \
  | grep -o '"executable":"[^"]*/integration-[^"]*"' | tail -n 1 | cut -d'"' -f4)
bin="$(dirname "$(dirname "$exe")")/backup-warden"
copies=$(mktemp -d)
trap 'rm -rf "$copies"' EXIT
cp "$exe" "$copies/integration"
cp "$bin" "$copies/backup-warden"

failed=()
for seed in "${seeds[@]}"; do
  echo "chaos: seed $seed, $rounds rounds" >&2
  if BACKUP_WARDEN_CHAOS_SEED=$seed BACKUP_WARDEN_CHAOS_ROUNDS=$rounds BACKUP_WARDEN_BINARY="$copies/backup-warden" \
      "$copies/integration" fault_campaign:: --nocapture > "$out/$seed.log" 2>&1; then
    grep '^CHAOS-RESULT ' "$out/$seed.log" | tail -n 1 >&2
  else
    failed+=("$seed")
    echo "chaos: seed $seed FAILED, see $out/$seed.log" >&2
  fi
done

python3 - "$out" "${seeds[@]}" > "$out/summary.txt" <<'PY'
import json, sys, statistics
out, seeds = sys.argv[1], sys.argv[2:]
results, failed = [], []
for seed in seeds:
    lines = [l for l in open(f"{out}/{seed}.log", errors="replace") if l.startswith("CHAOS-RESULT ")]
    if lines:
        results.append(json.loads(lines[-1].split(" ", 1)[1]))
    else:
        failed.append(seed)
print(f"runs: {len(seeds)}, passed: {len(results)}, failed: {len(failed)}")
for seed in failed:
    print(f"  failed seed {seed}: BACKUP_WARDEN_CHAOS_SEED={seed} BACKUP_WARDEN_CHAOS_ROUNDS=... cargo test --all-features --test integration fault_campaign:: -- --nocapture")
if results:
    total = lambda k: sum(r[k] for r in results)
    print(f"rounds: {total('rounds')}, databases per run: {max(r['databases'] for r in results)}, "
          f"controller processes: {total('processes')}, safety looks: {total('looks')} (all held)")
    print(f"keys made: {total('keys_made')}, orphaned by faults: {total('orphaned')}, left enabled after the cleanup: 0")
    first = [r["first_heal_seconds"] for r in results]
    print(f"first convergence: median {statistics.median(first):.1f}s, max {max(first):.1f}s")
    by_fault = {}
    for r in results:
        for fault, seconds in r["heal_seconds"]:
            by_fault.setdefault(fault, []).append(seconds)
    print("heal after each fault (seconds): fault, rounds, median, max")
    for fault, secs in sorted(by_fault.items()):
        print(f"  {fault:<18} {len(secs):>4} {statistics.median(secs):>7.1f} {max(secs):>7.1f}")
PY
cat "$out/summary.txt" >&2
[ ${#failed[@]} -eq 0 ]
