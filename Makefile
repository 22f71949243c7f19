# backup-warden: `make demo` shows it, `make test` proves it. See README.md.
.PHONY: demo test chaos bench bench-repositories bench-scale bench-scale-repositories bench-scale-sharded bench-relist bench-events bench-evidence down crds build clean

# CI keeps the Rust build outside the fresh clone, so a run reuses the last one's work.
ifdef CI
export CARGO_TARGET_DIR ?= $(HOME)/.cache/backup-warden/target
endif

demo:
	hack/demo.sh

test:
	hack/test.sh

# The fault campaign over many seeds (CHAOS_SEEDS, CHAOS_ROUNDS, CHAOS_SEED_LIST): RELIABILITY.md.
chaos:
	hack/chaos.sh

# Converge BENCH_OBJECTS (default 1000) databases against the local environment.
bench:
	hack/local-env.sh up >/dev/null
	cargo bench --locked --bench converge_databases

# Sweep BENCH_OBJECTS (default 2000) repositories against the GitHub fake and the emulator.
bench-repositories:
	hack/local-env.sh up >/dev/null
	cargo bench --locked --bench sweep_repositories

# Converge BENCH_OBJECTS (default 10000) databases against the in-process AWS model (RDS
# and KMS throttled as AWS is), the controller in the benchmark's process.
bench-scale:
	hack/local-env.sh up >/dev/null
	cargo bench --locked --bench scale_databases

# BENCH_OBJECTS (default 50000) repositories against the GitHub fake and the S3 model.
bench-scale-repositories:
	hack/local-env.sh up >/dev/null
	cargo bench --locked --bench scale_repositories

# BENCH_OBJECTS (default 100000) databases over BENCH_REPLICAS (default 4) sharded controller
# processes, each with its own AWS model; then one replica is killed and its shards taken over.
bench-scale-sharded:
	hack/local-env.sh up >/dev/null
	cargo bench --locked --bench scale_sharded

# The heap a relist of BENCH_OBJECTS (default 10000) stored objects costs, without a cluster.
bench-relist:
	cargo bench --locked --bench relist_memory

# Detection latency with change events: BENCH_OBJECTS (default 10000) compliant databases,
# a 30-minute resync, BENCH_EVENTS (default 200) retentions lowered each with its event.
bench-events:
	hack/local-env.sh up >/dev/null
	cargo bench --locked --bench event_detection

# The evidence log and the auditor's report: BENCH_OBJECTS (default 500) objects over
# BENCH_DAYS (default 30) days into the emulator's S3, then the report of the period.
bench-evidence:
	hack/local-env.sh up >/dev/null
	cargo bench --locked --bench evidence_report

down:
	hack/local-env.sh down

crds:
	cargo run --quiet --locked -- crd --output-dir crds
	hack/check-chart.sh --sync-crds

build:
	cargo build --release --locked

clean: down
	cargo clean
