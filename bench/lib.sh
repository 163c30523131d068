# Shared by bench/run.sh and bench/postgres.sh: a scratch dir, wrk runs, and an Assent server
# with the benchmark catalog. Expects BIN, DUR, SUBJECTS set and the working directory at the repo.

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
  env "$@" "$BIN" controllers create bench --name "Bench Co" --profile us-me-isp --data-dir "$dir" >/dev/null
  KEY="$(env "$@" "$BIN" keys create --controller bench --scope admin --data-dir "$dir")"
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

