#!/usr/bin/env bash
# Assent on PostgreSQL against Assent on SQLite, measured back to back in one run:
#   GET /v1/decisions, POST /v1/consents (64 connections), POST /v1/consents/batch (1000 events).
# Usage: bench/postgres.sh [SECONDS]   (default 10 s per measurement)
# Needs ASSENT_TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test); each run uses a
# fresh schema, dropped afterwards. Writes its section of BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR="${1:-10}"
CONNS=64
SUBJECTS=10000
URL="${ASSENT_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
SCHEMA="assent_bench_$$"

if ! command -v wrk >/dev/null; then
  (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null
fi
cargo build --release -q -p assent --bin assent
BIN=target/release/assent
source bench/lib.sh
drop_schema() { psql "$URL" -qc "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1 || true; }
trap 'cleanup; drop_schema' EXIT

declare -A R
measure() {
  local label="$1"; shift
  mkdir -p "$WORK/$label"
  start_assent "$WORK/$label" "$@"
  seed_subjects
  export KEY SUBJECTS
  run_wrk "${label}_decisions" decisions.lua "$BASE" "$CONNS"; R[${label}_dec]=$RPS; R[${label}_dec_p99]=$P99
  run_wrk "${label}_single" consent.lua "$BASE" "$CONNS"; R[${label}_single]=$RPS; R[${label}_single_p99]=$P99
  run_wrk "${label}_batch" batch.lua "$BASE" 4; R[${label}_batch]=$((RPS * 1000)); R[${label}_batch_p99]=$P99
  kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
}

echo "== SQLite" >&2
measure sqlite ASSENT_LOG=warn
echo "== PostgreSQL" >&2
measure postgres ASSENT_DATABASE_URL="$URL" ASSENT_DATABASE_SCHEMA="$SCHEMA"

ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
PGV="$(psql "$URL" -Atc 'SHOW server_version' 2>/dev/null || echo unknown)"
cat > "$WORK/postgres.md" <<MD
## PostgreSQL backend

Command: \`bench/postgres.sh $DUR\` (${DUR} s per measurement, release build, wrk with 2 threads on
the same 2 cores as the server and the database). The same server and scripts as the HTTP section
run first on SQLite, then on PostgreSQL $PGV on this machine (\`synchronous_commit=on\`: every
acknowledged write was flushed by PostgreSQL's WAL), in a fresh schema.

| what | SQLite | PostgreSQL | PostgreSQL / SQLite |
|---|---|---|---|
| \`GET /v1/decisions\`, $CONNS connections (from memory) | ${R[sqlite_dec]} req/s (p99 ${R[sqlite_dec_p99]} µs) | ${R[postgres_dec]} req/s (p99 ${R[postgres_dec_p99]} µs) | $(ratio "${R[postgres_dec]}" "${R[sqlite_dec]}")× |
| \`POST /v1/consents\`, $CONNS connections, one event each | ${R[sqlite_single]} events/s (p99 ${R[sqlite_single_p99]} µs) | ${R[postgres_single]} events/s (p99 ${R[postgres_single_p99]} µs) | $(ratio "${R[postgres_single]}" "${R[sqlite_single]}")× |
| \`POST /v1/consents/batch\`, 1000 events, 4 connections | ${R[sqlite_batch]} events/s (p99 ${R[sqlite_batch_p99]} µs) | ${R[postgres_batch]} events/s (p99 ${R[postgres_batch_p99]} µs) | $(ratio "${R[postgres_batch]}" "${R[sqlite_batch]}")× |

Writes to one controller serialise on its ledger head row (\`SELECT … FOR UPDATE\`), which is what
keeps sequence numbers gapless across nodes. Each node groups waiting appends into one transaction
and one COMMIT. A group of batches that only record events is checked with one read of each
kind (idempotency keys, customers, the tree's right edge) and written with one statement
(\`crates/assent-store-postgres/src/together.rs\`), refusing exactly the batches that would be
refused one by one; other groups, or a group whose statement fails, go batch by batch under
savepoints. So 64 waiting single events cost about six round trips together instead of two or
three each. Date: $(date -u +%Y-%m-%dT%H:%MZ), commit
$(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores.
MD
python3 bench/splice.py postgres "$WORK/postgres.md"
echo "wrote the PostgreSQL section of BENCHMARKS.md" >&2
