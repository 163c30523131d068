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

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_ready() {
  for _ in $(seq 1 200); do
    if curl -sf "$1" >/dev/null 2>&1; then return 0; fi
    sleep 0.05
  done
  echo "server at $1 did not come up" >&2; exit 1
}

# run_wrk NAME SCRIPT BASE_URL CONNECTIONS -> sets RPS, P50, P99
run_wrk() {
  local name="$1" script="$2" url="$3" conns="$4"
  cat "bench/lua/$script" bench/lua/report.lua > "$WORK/$name.lua"
  local out
  out="$(wrk -t2 -c"$conns" -d"${DUR}s" --timeout 10s -s "$WORK/$name.lua" "$url")"
  echo "$out" > "$WORK/$name.out"
  local line
  line="$(grep '^BENCH' <<<"$out")"
  local requests duration non2xx errors
  requests="$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$line")"
  duration="$(sed -E 's/.*duration_us=([0-9]+).*/\1/' <<<"$line")"
  non2xx="$(sed -E 's/.*non2xx=([0-9]+).*/\1/' <<<"$line")"
  errors="$(sed -E 's/.*connect=([0-9]+) read=([0-9]+) write=([0-9]+) timeout=([0-9]+).*/\1+\2+\3+\4/' <<<"$line")"
  if [[ "$non2xx" != "0" || "$((errors))" != "0" ]]; then
    echo "$name: $non2xx non-2xx responses, socket errors $errors" >&2
    echo "$out" >&2
    exit 1
  fi
  RPS="$(python3 -c "print(round($requests / ($duration / 1e6)))")"
  P50="$(sed -E 's/.*p50_us=([0-9]+).*/\1/' <<<"$line")"
  P99="$(sed -E 's/.*p99_us=([0-9]+).*/\1/' <<<"$line")"
  echo "$name: $RPS req/s (p50 ${P50} us, p99 ${P99} us)" >&2
}

# start_assent DIR [ENV...] -> sets BASE, KEY
start_assent() {
  local dir="$1"; shift
  local port; port="$(free_port)"
  "$BIN" controllers create bench --name "Bench Co" --profile us-me-isp --data-dir "$dir" >/dev/null
  KEY="$("$BIN" keys create --controller bench --scope admin --data-dir "$dir")"
  env "$@" ASSENT_LOG=warn "$BIN" serve --data-dir "$dir" --listen "127.0.0.1:$port" &
  PIDS+=("$!")
  BASE="http://127.0.0.1:$port"
  wait_ready "$BASE/readyz"
  local auth=(-H "Authorization: Bearer $KEY" -H "Content-Type: application/json")
  curl -sf -X PUT "$BASE/v1/data-categories/browsing-history" "${auth[@]}" \
    -d '{"personal":true,"names":{"en":"Sites you visit","es":"Sitios que visitas"}}' >/dev/null
  curl -sf -X PUT "$BASE/v1/data-categories/network-stats" "${auth[@]}" \
    -d '{"personal":false,"names":{"en":"Network totals","es":"Totales de red"}}' >/dev/null
  local text='{"title":"T","what":"W","how":"H","benefit":"B","who":"O","retention":"R"}'
  for p in ads offers sharing analytics; do
    local body='{"data_categories":["browsing-history"]}'
    [[ "$p" == sharing ]] && body='{"data_categories":["browsing-history"],"sale_or_sharing":true}'
    [[ "$p" == analytics ]] && body='{"model":"opt-out","data_categories":["network-stats"]}'
    curl -sf -X PUT "$BASE/v1/purposes/$p" "${auth[@]}" -d "$body" >/dev/null
    curl -sf -X POST "$BASE/v1/purposes/$p/versions" "${auth[@]}" \
      -d "{\"texts\":{\"en\":$text,\"es\":$text},\"retention_days\":30,\"recipients\":[{\"name\":\"Bench Co\",\"role\":\"uses it\"}]}" >/dev/null
  done
}

seed_subjects() {
  local auth=(-H "Authorization: Bearer $KEY" -H "Content-Type: application/json")
  for chunk in $(seq 0 $((SUBJECTS / 1000 - 1))); do
    python3 - "$chunk" > "$WORK/seed.json" <<'PY'
import json, sys
c = int(sys.argv[1])
events = []
for i in range(c * 1000, c * 1000 + 1000):
    # Half grant ads, a third grant offers: decisions see every outcome.
    if i % 2 == 0:
        events.append({"subject": f"cust-{i}", "purpose": "ads", "version": 1, "action": "grant"})
    else:
        events.append({"subject": f"cust-{i}", "purpose": "offers", "version": 1, "action": "grant" if i % 3 else "withdraw"})
print(json.dumps({"events": events}))
PY
    curl -sf -X POST "$BASE/v1/consents/batch" "${auth[@]}" --data-binary "@$WORK/seed.json" >/dev/null
  done
}

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
