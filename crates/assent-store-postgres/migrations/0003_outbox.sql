-- The outbox and delivery to downstream systems (see the SQLite schema's 0002_outbox.sql for
-- the reasoning; the tables are the same).

CREATE TABLE outbox (
    controller  TEXT COLLATE "C" NOT NULL,
    seq         BIGINT NOT NULL,
    erased      TEXT,
    PRIMARY KEY (controller, seq)
);

CREATE TABLE destinations (
    id            TEXT COLLATE "C" PRIMARY KEY,
    controller    TEXT COLLATE "C" NOT NULL,
    kind          TEXT NOT NULL,
    url           TEXT NOT NULL,
    secret        TEXT,
    purposes      TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    cursor        BIGINT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    first_failure BIGINT,
    next_attempt  BIGINT,
    last_error    TEXT
);
CREATE INDEX destinations_by_controller ON destinations (controller);

CREATE TABLE deliveries (
    destination   TEXT COLLATE "C" NOT NULL,
    seq           BIGINT NOT NULL,
    controller    TEXT COLLATE "C" NOT NULL,
    committed_at  BIGINT NOT NULL,
    delivered_at  BIGINT,
    acked_at      BIGINT,
    attempts      BIGINT NOT NULL,
    error         TEXT,
    PRIMARY KEY (destination, seq)
);
