#!/usr/bin/env bash
# Assent HTTP benchmarks, all measured in one run on this machine so the ratios are fair:
#   1. axum hello-world baseline vs GET /v1/decisions (from memory)
#   2. POST /v1/consents, 64 connections: group commit vs one transaction (one fsync) per request
#   3. POST /v1/consents/batch with 1000-event batches
# Usage: bench/run.sh [--check] [SECONDS]     (default 10 s per measurement)
# Writes its section of BENCHMARKS.md. With --check, exits non-zero when a target of issue #2 is missed.
set -euo pipefail
cd "$(dirname "$0")/.."

CHECK=0
if [[ "${1:-}" == "--check" ]]; then CHECK=1; shift; fi
DUR="${1:-10}"
CONNS=64
SUBJECTS=10000

if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian package)" >&2
  (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null
fi

cargo build --release -q -p assent --bin assent
cargo build --release -q -p assent-http --example hello_baseline
BIN=target/release/assent
HELLO=target/release/examples/hello_baseline

source bench/lib.sh

echo "== hello-world baseline" >&2
HPORT="$(free_port)"
"$HELLO" "127.0.0.1:$HPORT" &
PIDS+=("$!")
wait_ready "http://127.0.0.1:$HPORT/v1/decisions"
run_wrk hello decisions.lua "http://127.0.0.1:$HPORT" "$CONNS"; HELLO_RPS=$RPS; HELLO_P99=$P99

echo "== assent, group commit" >&2
mkdir -p "$WORK/group"
start_assent "$WORK/group"
seed_subjects
export KEY SUBJECTS
run_wrk decisions decisions.lua "$BASE" "$CONNS"; DEC_RPS=$RPS; DEC_P99=$P99
run_wrk single_group consent.lua "$BASE" "$CONNS"; GROUP_RPS=$RPS; GROUP_P50=$P50; GROUP_P99=$P99
run_wrk batch batch.lua "$BASE" 4; BATCH_RPS=$RPS; BATCH_P99=$P99
kill "${PIDS[-1]}"

echo "== assent, one transaction per request (baseline)" >&2
mkdir -p "$WORK/per"
start_assent "$WORK/per" ASSENT_COMMIT_MODE=per-request
export KEY
run_wrk single_per consent.lua "$BASE" "$CONNS"; PER_RPS=$RPS; PER_P50=$P50; PER_P99=$P99
kill "${PIDS[-1]}"

DEC_RATIO="$(python3 -c "print(f'{$DEC_RPS / $HELLO_RPS:.2f}')")"
GROUP_RATIO="$(python3 -c "print(f'{$GROUP_RPS / $PER_RPS:.2f}')")"
BATCH_EPS=$((BATCH_RPS * 1000))
verdict() { python3 -c "print('met' if $1 else 'MISSED')"; }
V_DEC="$(verdict "$DEC_RPS >= 0.6 * $HELLO_RPS")"
V_GROUP="$(verdict "$GROUP_RPS >= 3 * $PER_RPS")"
V_BATCH="$(verdict "$BATCH_EPS >= 100000")"

CPU="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs || true)"
REV="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
cat > "$WORK/http.md" <<MD
## HTTP: ingest and decisions

Every figure below comes from one run of \`bench/run.sh $DUR\` (${DUR} s per measurement) on the
same machine, back to back, so ratios compare like with like. Absolute numbers move with the
machine; the ratios are the claim. Regenerate with:

    bench/run.sh          # writes this file
    bench/run.sh --check  # also fails when a target is missed

Load generator: wrk 4.1 (2 threads, on the same 2 cores as the server), Lua scripts in
\`bench/lua/\`. Release build. Data on the local disk; SQLite in WAL mode with
\`synchronous=FULL\`, so every acknowledged write was fsynced.

Machine: $(nproc) cores, ${CPU:-unknown CPU}. Commit: $REV. Date: $(date -u +%Y-%m-%dT%H:%MZ).

| what | result | target | verdict |
|---|---|---|---|
| \`GET /v1/decisions\`, $CONNS connections, $SUBJECTS seeded customers | $DEC_RPS req/s (p99 ${DEC_P99} µs) = **${DEC_RATIO}×** the axum hello-world | ≥ 0.60× | $V_DEC |
| axum hello-world baseline, same script and connections | $HELLO_RPS req/s (p99 ${HELLO_P99} µs) | | |
| \`POST /v1/consents\`, $CONNS connections, group commit | $GROUP_RPS events/s (p50 ${GROUP_P50} µs, p99 ${GROUP_P99} µs) = **${GROUP_RATIO}×** one-transaction-per-event | ≥ 3× | $V_GROUP |
| \`POST /v1/consents\`, $CONNS connections, one transaction (one fsync) per event | $PER_RPS events/s (p50 ${PER_P50} µs, p99 ${PER_P99} µs) | | |
| \`POST /v1/consents/batch\`, 1000 events per request, 4 connections | **$BATCH_EPS events/s** ($BATCH_RPS batches/s, p99 ${BATCH_P99} µs) | ≥ 100,000 events/s | $V_BATCH |

How each is measured:

- **Decisions** are answered from memory: the key is checked against an in-memory cache of key
  hashes, the catalog and the customer's state are read under a read lock, and
  \`assent_core::decide\` runs. No storage call. The hello-world baseline is
  \`crates/assent-http/examples/hello_baseline.rs\` (axum, same runtime), driven by the same Lua
  script (\`bench/lua/decisions.lua\`, a random customer and purpose per request).
- **Single events**: each request grants one purpose for a new customer (\`bench/lua/consent.lua\`).
  "Group commit" is the shipped writer: one thread drains every waiting request into one SQLite
  transaction (a savepoint each) and commits once, so one fsync acknowledges many requests. The
  baseline is the same server with \`ASSENT_COMMIT_MODE=per-request\`: one transaction, one fsync,
  per request.
- **Batches**: 1000 grants for new customers per request (\`bench/lua/batch.lua\`), all or nothing.

Correctness under this load is tested elsewhere: read-your-writes in
\`crates/assent-http/tests/api/flows.rs\`, durability across \`kill -9\` in
\`crates/assent/tests/cli/crash.rs\`.
MD
python3 bench/splice.py http "$WORK/http.md"
echo "wrote BENCHMARKS.md: decisions ${DEC_RATIO}x hello ($V_DEC), group ${GROUP_RATIO}x per-request ($V_GROUP), batch $BATCH_EPS events/s ($V_BATCH)" >&2
if [[ $CHECK == 1 && ( $V_DEC != met || $V_GROUP != met || $V_BATCH != met ) ]]; then exit 1; fi
