-- Assent PostgreSQL schema, version 1.
-- The SQLite schema (crates/assent-store-sqlite/migrations/0001_init.sql) in PostgreSQL types, plus
-- `ledger_heads`, the row per controller that appends lock to take sequence numbers in turn.
-- Invariant: rows of `ledger` are only ever inserted. State tables are projections of it.
--
-- Names are unqualified: every connection sets `search_path` to the configured schema, and the
-- migrator records this file in that schema's `schema_migrations`.
-- Text keys use the "C" collation: ordering and index comparisons are bytewise, as in SQLite,
-- whatever the database's locale. JSON is kept as text, exactly as the SQLite backend writes it.
-- Times are unix milliseconds (BIGINT); hashes, secrets and canonical entry bytes are BYTEA.

CREATE TABLE controllers (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT NOT NULL,
    languages   TEXT NOT NULL,   -- JSON array
    profiles    TEXT NOT NULL,   -- JSON array
    origins     TEXT NOT NULL DEFAULT '[]', -- JSON array: origins allowed to embed the prompt
    created_at  BIGINT NOT NULL  -- unix ms
);

CREATE TABLE api_keys (
    hash        BYTEA PRIMARY KEY, -- SHA-256 of the secret; the secret is never stored
    prefix      TEXT NOT NULL,
    controller  TEXT COLLATE "C" NOT NULL,
    scopes      TEXT NOT NULL,     -- JSON array
    created_at  BIGINT NOT NULL
);

CREATE TABLE data_categories (
    controller  TEXT COLLATE "C" NOT NULL,
    id          TEXT COLLATE "C" NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (controller, id)
);

CREATE TABLE purposes (
    controller  TEXT COLLATE "C" NOT NULL,
    id          TEXT COLLATE "C" NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (controller, id)
);

CREATE TABLE notice_versions (
    controller  TEXT COLLATE "C" NOT NULL,
    purpose     TEXT COLLATE "C" NOT NULL,
    version     BIGINT NOT NULL,
    seq         BIGINT NOT NULL,  -- the ledger entry that published it
    body        TEXT NOT NULL,
    PRIMARY KEY (controller, purpose, version)
);

-- One row per controller that has a ledger: the sequence number its next entry gets. An append
-- locks this row (SELECT ... FOR UPDATE) for its whole transaction, so appends to one controller
-- take their numbers one after another, from any number of server nodes, and numbers are gapless
-- because the row moves only when the entries commit with it.
CREATE TABLE ledger_heads (
    controller  TEXT COLLATE "C" PRIMARY KEY,
    next_seq    BIGINT NOT NULL CHECK (next_seq >= 0)
);

CREATE TABLE ledger (
    controller  TEXT COLLATE "C" NOT NULL,
    seq         BIGINT NOT NULL,
    bytes       BYTEA NOT NULL,   -- canonical encoding, see assent_core::encoding
    leaf_hash   BYTEA NOT NULL,   -- SHA-256(0x00 || bytes)
    subject_no  BIGINT,           -- subjects.number, for history lookups; NULL for non-consent entries
    nodes       BYTEA,            -- the Merkle subtrees this leaf completes: node (level, idx) for
                                  -- level = 1, 2, ... while (seq + 1) is divisible by 2^level, 32 bytes
                                  -- each, so node (L, i) lives in the row seq = (i + 1) * 2^L - 1
    PRIMARY KEY (controller, seq)
);

-- Keyed by the sequential subject number, not the random pseudonym: a new subject's rows go to
-- the right edge of the index instead of dirtying a random page each.
CREATE INDEX ledger_by_subject ON ledger (controller, subject_no, seq) WHERE subject_no IS NOT NULL;

CREATE TABLE subjects (
    controller  TEXT COLLATE "C" NOT NULL,
    number      BIGINT NOT NULL,  -- sequential per controller, never reused
    id          TEXT NOT NULL,
    secret      BYTEA NOT NULL,   -- per-subject key; deleting it unlinks the subject from the ledger
    pseudonym   BYTEA NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (controller, number)
);

CREATE TABLE consent_state (
    controller  TEXT COLLATE "C" NOT NULL,
    subject_no  BIGINT NOT NULL,
    purpose     TEXT COLLATE "C" NOT NULL,
    subject     BYTEA NOT NULL,   -- pseudonym
    action      TEXT NOT NULL,
    version     BIGINT,
    since       BIGINT NOT NULL,
    method      TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    PRIMARY KEY (controller, subject_no, purpose)
);

CREATE TABLE evidence (
    controller  TEXT COLLATE "C" NOT NULL,
    seq         BIGINT NOT NULL,
    subject_no  BIGINT NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (controller, seq)
);

CREATE TABLE checkpoints (
    controller  TEXT COLLATE "C" NOT NULL,
    tree_size   BIGINT NOT NULL,
    root        BYTEA NOT NULL,
    note        TEXT NOT NULL,    -- the C2SP signed note, exactly as served
    signed_at   BIGINT NOT NULL,
    PRIMARY KEY (controller, tree_size)
);

-- Preference-center links are single use: the nonce of each opened link.
CREATE TABLE used_links (
    controller  TEXT COLLATE "C" NOT NULL,
    nonce       TEXT COLLATE "C" NOT NULL,
    used_at     BIGINT NOT NULL,
    PRIMARY KEY (controller, nonce)
);

CREATE INDEX evidence_by_subject ON evidence (controller, subject_no);

CREATE TABLE idempotency (
    controller   TEXT COLLATE "C" NOT NULL,
    key          TEXT COLLATE "C" NOT NULL,
    request_hash BYTEA NOT NULL,
    first_seq    BIGINT NOT NULL,
    count        BIGINT NOT NULL,
    PRIMARY KEY (controller, key)
);
