#!/usr/bin/env bash
# How soon a write on one node is visible on another: two `assent serve` nodes on one PostgreSQL,
# 200 writes alternating between them, each polled on the other node every millisecond after
# its 201. Prints p50, p99 and max. Needs PostgreSQL (ASSENT_TEST_DATABASE_URL, default the
# local server); the test asserts p99 < 100 ms.
set -euo pipefail
cd "$(dirname "$0")/.."
export ASSENT_TEST_DATABASE_URL="${ASSENT_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
cargo test -p assent --test cli \
  postgres::a_write_on_one_node_is_visible_on_another_within_100_ms_at_the_99th_percentile \
  -- --nocapture --exact 2>&1 | grep -E "visibility on the other node|test result"
