-- The outbox and delivery to downstream systems.

-- One row per ledger entry, written in the entry's own transaction, so nothing committed can
-- miss delivery. Rows every destination has passed are deleted. `erased` is the id of the
-- subject an erasure entry erased: downstream systems must learn whom to forget, and this row
-- is the only place that id outlives the erasure, until it is delivered.
CREATE TABLE outbox (
    controller  TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    erased      TEXT,
    PRIMARY KEY (controller, seq)
) WITHOUT ROWID;

-- Webhooks and the NATS stream, each with its progress through the controller's outbox.
CREATE TABLE destinations (
    id            TEXT PRIMARY KEY,
    controller    TEXT NOT NULL,
    kind          TEXT NOT NULL,             -- webhook | nats
    url           TEXT NOT NULL,
    secret        TEXT,                      -- webhook signing secret; signing needs it as is
    purposes      TEXT NOT NULL,             -- JSON array; empty means every purpose
    created_at    INTEGER NOT NULL,
    cursor        INTEGER NOT NULL,          -- entries below it are delivered or dead-lettered
    attempts      INTEGER NOT NULL DEFAULT 0,-- failed attempts at the entry at `cursor`
    first_failure INTEGER,
    next_attempt  INTEGER,
    last_error    TEXT
);
CREATE INDEX destinations_by_controller ON destinations (controller);

-- Each entry's delivery to each destination: when it was delivered and confirmed (time to
-- honor), or, for a dead letter, why it was given up on.
CREATE TABLE deliveries (
    destination   TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    controller    TEXT NOT NULL,
    committed_at  INTEGER NOT NULL,
    delivered_at  INTEGER,                   -- NULL for a dead letter
    acked_at      INTEGER,
    attempts      INTEGER NOT NULL,
    error         TEXT,
    PRIMARY KEY (destination, seq)
) WITHOUT ROWID;
