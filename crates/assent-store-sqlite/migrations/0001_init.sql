-- Assent SQLite schema, version 1.
-- Invariant: rows of `ledger` are only ever inserted. State tables are projections of it.

CREATE TABLE controllers (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    languages   TEXT NOT NULL,   -- JSON array
    profiles    TEXT NOT NULL,   -- JSON array
    origins     TEXT NOT NULL DEFAULT '[]', -- JSON array: origins allowed to embed the prompt
    created_at  INTEGER NOT NULL -- unix ms
);

CREATE TABLE api_keys (
    hash        BLOB PRIMARY KEY, -- SHA-256 of the secret; the secret is never stored
    prefix      TEXT NOT NULL,
    controller  TEXT NOT NULL,
    scopes      TEXT NOT NULL,    -- JSON array
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE data_categories (
    controller  TEXT NOT NULL,
    id          TEXT NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (controller, id)
) WITHOUT ROWID;

CREATE TABLE purposes (
    controller  TEXT NOT NULL,
    id          TEXT NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (controller, id)
) WITHOUT ROWID;

CREATE TABLE notice_versions (
    controller  TEXT NOT NULL,
    purpose     TEXT NOT NULL,
    version     INTEGER NOT NULL,
    seq         INTEGER NOT NULL, -- the ledger entry that published it
    body        TEXT NOT NULL,
    PRIMARY KEY (controller, purpose, version)
) WITHOUT ROWID;

CREATE TABLE ledger (
    controller  TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    bytes       BLOB NOT NULL,    -- canonical encoding, see assent_core::encoding
    leaf_hash   BLOB NOT NULL,    -- SHA-256(0x00 || bytes)
    subject_no  INTEGER,          -- subjects.number, for history lookups; NULL for non-consent entries
    nodes       BLOB,             -- the Merkle subtrees this leaf completes: node (level, idx) for
                                  -- level = 1, 2, ... while (seq + 1) is divisible by 2^level, 32 bytes
                                  -- each, so node (L, i) lives in the row seq = (i + 1) * 2^L - 1
    PRIMARY KEY (controller, seq)
) WITHOUT ROWID; -- one B-tree, appended at its right edge, instead of a table plus a key index

-- Keyed by the sequential subject number, not the random pseudonym: a new subject's rows go to
-- the right edge of the index instead of dirtying a random page each.
CREATE INDEX ledger_by_subject ON ledger (controller, subject_no, seq) WHERE subject_no IS NOT NULL;

CREATE TABLE subjects (
    controller  TEXT NOT NULL,
    number      INTEGER NOT NULL, -- sequential per controller, never reused
    id          TEXT NOT NULL,
    secret      BLOB NOT NULL,    -- per-subject key; deleting it unlinks the subject from the ledger
    pseudonym   BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (controller, number)
) WITHOUT ROWID;

CREATE TABLE consent_state (
    controller  TEXT NOT NULL,
    subject_no  INTEGER NOT NULL,
    purpose     TEXT NOT NULL,
    subject     BLOB NOT NULL,    -- pseudonym
    action      TEXT NOT NULL,
    version     INTEGER,
    since       INTEGER NOT NULL,
    method      TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    PRIMARY KEY (controller, subject_no, purpose)
) WITHOUT ROWID;

CREATE TABLE evidence (
    controller  TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    subject_no  INTEGER NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (controller, seq)
) WITHOUT ROWID;

CREATE TABLE checkpoints (
    controller  TEXT NOT NULL,
    tree_size   INTEGER NOT NULL,
    root        BLOB NOT NULL,
    note        TEXT NOT NULL,    -- the C2SP signed note, exactly as served
    signed_at   INTEGER NOT NULL,
    PRIMARY KEY (controller, tree_size)
) WITHOUT ROWID;

-- Preference-center links are single use: the nonce of each opened link.
CREATE TABLE used_links (
    controller  TEXT NOT NULL,
    nonce       TEXT NOT NULL,
    used_at     INTEGER NOT NULL,
    PRIMARY KEY (controller, nonce)
) WITHOUT ROWID;

CREATE INDEX evidence_by_subject ON evidence (controller, subject_no);

CREATE TABLE idempotency (
    controller   TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash BLOB NOT NULL,
    first_seq    INTEGER NOT NULL,
    count        INTEGER NOT NULL,
    PRIMARY KEY (controller, key)
) WITHOUT ROWID;
