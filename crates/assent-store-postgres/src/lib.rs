//! PostgreSQL backend, for one or more Assent server nodes sharing a database.
//!
//! [`PostgresStore::connect`] opens a small pool of connections (see `pool.rs`), creates the
//! configured schema if missing and applies the embedded migrations (`migrations/`), recorded in
//! that schema's `schema_migrations` table under an advisory lock, so nodes starting together do
//! not race. Every connection sets `search_path` to the schema; nothing else in the database is
//! touched.
//!
//! Appends serialize per controller on a row lock (see `append.rs`): writers on any number of
//! nodes take gapless, ordered sequence numbers, and each entry's row carries the Merkle subtree
//! hashes it completes, exactly as the SQLite backend stores them. Each store runs one writer
//! task on a connection of its own (beyond `max_connections`; see `writer.rs`) that commits every
//! append waiting at once in one transaction, a savepoint per batch: group commit, one WAL flush
//! for many appends. Commits keep `synchronous_commit` on, and a caller is answered only after
//! its group committed, so an `Ok` from [`assent_store::Store::append`] is durable.
//!
//! # TLS
//!
//! Connections are made without TLS (`tokio_postgres::NoTls`): fine over a Unix socket or
//! loopback, not across a network. With `NoTls`, a URL with `sslmode=require` fails to connect
//! rather than fall back to plain text, while the default `sslmode=prefer` connects in plain
//! text. Encrypting would mean making the pool (`pool.rs`) generic over
//! `tokio_postgres::tls::MakeTlsConnect` and passing a connector such as `tokio-postgres-rustls`
//! (rustls, no OpenSSL); until then, run a TLS-terminating proxy or keep the database local.
//!
//! # Erasure
//!
//! Erasing a subject deletes its row, and with it the secret that links it to its pseudonym.
//! Under MVCC the old row version stays in the table's pages until VACUUM reclaims it (and in
//! WAL archives and backups for as long as they are kept): autovacuum does this on its own, but
//! an operator who must bound that window should schedule `VACUUM subjects` and rotate backups.

mod append;
mod codec;
mod delivery;
mod feed;
mod migrations;
mod plan;
mod pool;
mod rows;
mod together;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use assent_core::catalog::NoticeVersion;
use assent_core::{ControllerId, DataCategory, Purpose, Timestamp};
use assent_store::{
    ApiKeyRecord, AppendBatch, Appended, CatalogSnapshot, Change, Controller, Delivery, DeliveryFilter, Destination,
    IdempotencyRecord, OutboxEntry, Progress, Store, StoreError, StoreResult, StoredCheckpoint, StoredEntry,
    StoredState, SubjectRecord,
};
use tokio::sync::mpsc;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::codec::{bound_to_sql, from_json, get, seq_from_sql, seq_to_sql, to_json};
use crate::pool::Pool;
use crate::writer::Writer;

#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// The schema Assent's tables live in; created on first connect if missing.
    pub schema: String,
    /// The most connections this store's readers and schema writes open at once; callers beyond
    /// it wait for one to free. Appends use one more, the writer's own.
    pub max_connections: usize,
    /// How long opening a connection may take, unless the URL sets `connect_timeout`.
    pub connect_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self { schema: "public".into(), max_connections: 10, connect_timeout: Duration::from_secs(10) }
    }
}

/// The PostgreSQL store. Cheap to clone: clones share one pool and one append writer, which
/// stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: Arc<Pool>,
    writer: Writer,
    /// Lease connections by role: a session-level advisory lock lives as long as its session.
    leases: Arc<tokio::sync::Mutex<std::collections::HashMap<&'static str, Lease>>>,
    schema: String,
}

/// A connection that holds, or keeps trying for, one role's advisory lock.
struct Lease {
    conn: pool::Conn,
    held: bool,
    /// When the connection last answered: a lease is only as alive as its session.
    checked: std::time::Instant,
}

/// How often a held lease's connection is checked, and how long it may take to answer. A
/// connection that died silently (a dropped NAT mapping) is noticed within about three seconds,
/// so its node stops acting as leader by the time the server ends the session and another node
/// takes the lock.
const LEASE_CHECK_EVERY: Duration = Duration::from_secs(1);
const LEASE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("held", &self.held).finish_non_exhaustive()
    }
}

/// First key of the lease locks ("ASNL"); the second is `hashtext(schema || ':' || role)`.
const LEASE_CLASS: i32 = 0x4153_4E4C;

/// `name` as a quoted SQL identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl PostgresStore {
    /// Connects to the database at `url` (a `postgres://` URL or `key=value` string, as libpq
    /// takes), creates `options.schema` if missing and brings its tables up to date.
    pub async fn connect(url: &str, options: PostgresOptions) -> StoreResult<Self> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| StoreError::Backend(Box::new(e)))?;
        let schema = options.schema;
        // PostgreSQL truncates longer identifiers, which would put the tables somewhere else.
        if schema.is_empty() || schema.len() > 63 || schema.contains('\0') {
            return Err(StoreError::Backend(
                format!("schema name `{schema}` must be 1 to 63 bytes with no NUL").into(),
            ));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("assent");
        }
        // A node that stalls inside a transaction (paused VM, network partition) would hold its
        // controller's head row, and so every other node's appends to it, until TCP gave up: the
        // server ends such a session after a minute instead. Appends never idle that long.
        let setup =
            format!("SET search_path TO {}; SET idle_in_transaction_session_timeout = '60s'", quote_ident(&schema));
        let pool = Arc::new(Pool::new(config, setup, options.max_connections));
        {
            let mut pooled = pool.get().await?;
            migrations::run(&mut pooled.conn()?.client, &schema).await?;
        }
        let writer = Writer::spawn(Arc::clone(&pool), pool.connect().await?, feed::channel(&schema));
        Ok(Self { pool, writer, leases: Arc::default(), schema })
    }

    /// What other writers change, as they commit: the ledger growing, catalogs and settings
    /// changing (see `feed.rs`). Starts with [`Change::Resync`] and again after every reconnect.
    /// The listener stops when the receiver is dropped.
    pub fn changes(&self) -> mpsc::Receiver<Change> {
        let (out, changes) = mpsc::channel(1024);
        tokio::spawn(feed::run(self.pool.config().clone(), feed::channel(&self.schema), out));
        changes
    }

    /// Announces a catalog or settings change of `controller` to every node's change feed.
    async fn announce_catalog(&self, controller: &ControllerId) -> StoreResult<()> {
        let payload = format!("{}{controller}", feed::CATALOG);
        self.execute("SELECT pg_notify($1, $2)", &[&feed::channel(&self.schema), &payload]).await.map(drop)
    }

    async fn query(&self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<Vec<Row>> {
        let mut pooled = self.pool.get().await?;
        pooled.conn()?.query(sql, params).await
    }

    async fn query_opt(&self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<Option<Row>> {
        let mut pooled = self.pool.get().await?;
        pooled.conn()?.query_opt(sql, params).await
    }

    async fn execute(&self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<u64> {
        let mut pooled = self.pool.get().await?;
        pooled.conn()?.execute(sql, params).await
    }

    async fn read_entries(&self, sql: &'static str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<Vec<StoredEntry>> {
        self.query(sql, params).await?.iter().map(codec::entry).collect()
    }

    async fn read_checkpoints(
        &self,
        sql: &'static str,
        controller: &ControllerId,
    ) -> StoreResult<Vec<StoredCheckpoint>> {
        self.query(sql, &[&controller.as_str()]).await?.iter().map(codec::checkpoint).collect()
    }
}

fn controller_from_row(row: &Row) -> StoreResult<Controller> {
    Ok(Controller {
        id: ControllerId::parse(get(row, 0)?).map_err(StoreError::Corrupt)?,
        name: get(row, 1)?,
        languages: from_json(get(row, 2)?)?,
        profiles: from_json(get(row, 3)?)?,
        created_at: Timestamp::from_unix_millis(get(row, 4)?),
        allowed_origins: from_json(get(row, 5)?)?,
    })
}

impl Store for PostgresStore {
    async fn create_controller(&self, controller: Controller) -> StoreResult<()> {
        let languages = to_json(&controller.languages)?;
        let profiles = to_json(&controller.profiles)?;
        let origins = to_json(&controller.allowed_origins)?;
        let inserted = self
            .execute(
                "INSERT INTO controllers (id, name, languages, profiles, created_at, origins)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
                &[
                    &controller.id.as_str(),
                    &controller.name,
                    &languages,
                    &profiles,
                    &controller.created_at.unix_millis(),
                    &origins,
                ],
            )
            .await?;
        if inserted == 0 {
            return Err(StoreError::AlreadyExists(controller.id.to_string()));
        }
        Ok(())
    }

    async fn update_controller(&self, controller: Controller) -> StoreResult<()> {
        let languages = to_json(&controller.languages)?;
        let profiles = to_json(&controller.profiles)?;
        let origins = to_json(&controller.allowed_origins)?;
        let updated = self
            .execute(
                "UPDATE controllers SET name = $2, languages = $3, profiles = $4, origins = $5 WHERE id = $1",
                &[&controller.id.as_str(), &controller.name, &languages, &profiles, &origins],
            )
            .await?;
        if updated == 0 {
            return Err(StoreError::NotFound(controller.id.to_string()));
        }
        self.announce_catalog(&controller.id).await
    }

    async fn controller(&self, id: ControllerId) -> StoreResult<Option<Controller>> {
        self.query_opt(
            "SELECT id, name, languages, profiles, created_at, origins FROM controllers WHERE id = $1",
            &[&id.as_str()],
        )
        .await?
        .as_ref()
        .map(controller_from_row)
        .transpose()
    }

    async fn list_controllers(&self) -> StoreResult<Vec<Controller>> {
        self.query("SELECT id, name, languages, profiles, created_at, origins FROM controllers ORDER BY id", &[])
            .await?
            .iter()
            .map(controller_from_row)
            .collect()
    }

    async fn create_api_key(&self, key: ApiKeyRecord) -> StoreResult<()> {
        let scopes = to_json(&key.scopes)?;
        // One statement: the key is inserted only if its controller exists.
        let inserted = self
            .execute(
                "INSERT INTO api_keys (hash, prefix, controller, scopes, created_at)
                 SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM controllers WHERE id = $3)",
                &[&&key.hash[..], &key.prefix, &key.controller.as_str(), &scopes, &key.created_at.unix_millis()],
            )
            .await?;
        if inserted == 0 {
            return Err(StoreError::NotFound(key.controller.to_string()));
        }
        Ok(())
    }

    async fn find_api_key(&self, hash: [u8; 32]) -> StoreResult<Option<ApiKeyRecord>> {
        let row = self
            .query_opt("SELECT prefix, controller, scopes, created_at FROM api_keys WHERE hash = $1", &[&&hash[..]])
            .await?;
        row.map(|row| {
            Ok(ApiKeyRecord {
                hash,
                prefix: get(&row, 0)?,
                controller: ControllerId::parse(get(&row, 1)?).map_err(StoreError::Corrupt)?,
                scopes: from_json(get(&row, 2)?)?,
                created_at: Timestamp::from_unix_millis(get(&row, 3)?),
            })
        })
        .transpose()
    }

    async fn put_data_category(&self, controller: ControllerId, category: DataCategory) -> StoreResult<()> {
        let body = to_json(&category)?;
        self.execute(
            "INSERT INTO data_categories (controller, id, body) VALUES ($1, $2, $3)
             ON CONFLICT (controller, id) DO UPDATE SET body = excluded.body",
            &[&controller.as_str(), &category.id.as_str(), &body],
        )
        .await?;
        self.announce_catalog(&controller).await
    }

    async fn put_purpose(&self, controller: ControllerId, purpose: Purpose) -> StoreResult<()> {
        let body = to_json(&purpose)?;
        self.execute(
            "INSERT INTO purposes (controller, id, body) VALUES ($1, $2, $3)
             ON CONFLICT (controller, id) DO UPDATE SET body = excluded.body",
            &[&controller.as_str(), &purpose.id.as_str(), &body],
        )
        .await?;
        self.announce_catalog(&controller).await
    }

    async fn load_catalog(&self, controller: ControllerId) -> StoreResult<CatalogSnapshot> {
        let mut pooled = self.pool.get().await?;
        let conn = pooled.conn()?;
        let id = controller.as_str();
        let mut snapshot = CatalogSnapshot::default();
        for row in conn.query("SELECT body FROM data_categories WHERE controller = $1 ORDER BY id", &[&id]).await? {
            let category: DataCategory = from_json(get(&row, 0)?)?;
            snapshot.data_categories.insert(category.id.clone(), category);
        }
        for row in conn.query("SELECT body FROM purposes WHERE controller = $1 ORDER BY id", &[&id]).await? {
            let purpose: Purpose = from_json(get(&row, 0)?)?;
            snapshot.purposes.insert(purpose.id.clone(), purpose);
        }
        for row in conn
            .query("SELECT body FROM notice_versions WHERE controller = $1 ORDER BY purpose, version", &[&id])
            .await?
        {
            let version: NoticeVersion = from_json(get(&row, 0)?)?;
            snapshot.versions.entry(version.purpose.clone()).or_default().push(version);
        }
        Ok(snapshot)
    }

    async fn append(&self, batch: Arc<AppendBatch>) -> StoreResult<Appended> {
        self.writer.append(batch).await
    }

    async fn find_idempotency(&self, controller: ControllerId, key: String) -> StoreResult<Option<IdempotencyRecord>> {
        self.query_opt(append::FIND_IDEMPOTENCY, &[&controller.as_str(), &key])
            .await?
            .map(|row| append::idempotency_record(&key, &row))
            .transpose()
    }

    async fn ledger_size(&self, controller: ControllerId) -> StoreResult<u64> {
        // The head moves in the same transaction as the entries, so it is the committed size.
        match self.query_opt("SELECT next_seq FROM ledger_heads WHERE controller = $1", &[&controller.as_str()]).await?
        {
            Some(row) => seq_from_sql(get(&row, 0)?),
            None => Ok(0),
        }
    }

    async fn entries(&self, controller: ControllerId, start: u64, end: u64) -> StoreResult<Vec<StoredEntry>> {
        self.read_entries(
            "SELECT seq, bytes, leaf_hash, nodes, subject_no FROM ledger WHERE controller = $1 AND seq >= $2 AND seq < $3 ORDER BY seq",
            &[&controller.as_str(), &bound_to_sql(start), &bound_to_sql(end)],
        )
        .await
    }

    async fn subject_entries(&self, controller: ControllerId, subject_number: u64) -> StoreResult<Vec<StoredEntry>> {
        let number = seq_to_sql(subject_number)?;
        self.read_entries(
            "SELECT seq, bytes, leaf_hash, nodes, subject_no FROM ledger WHERE controller = $1 AND subject_no = $2 ORDER BY seq",
            &[&controller.as_str(), &number],
        )
        .await
    }

    async fn next_subject_number(&self, controller: ControllerId) -> StoreResult<u64> {
        // Only a hint for a node's provisional numbers: the append allocates the real ones.
        let rows = self
            .query(
                "SELECT GREATEST(
                    COALESCE((SELECT next_subject FROM ledger_heads WHERE controller = $1), 0),
                    COALESCE((SELECT MAX(number) + 1 FROM subjects WHERE controller = $1), 0),
                    COALESCE((SELECT MAX(subject_no) + 1 FROM ledger WHERE controller = $1 AND subject_no IS NOT NULL), 0))",
                &[&controller.as_str()],
            )
            .await?;
        let row = rows.first().ok_or_else(|| StoreError::Corrupt("no answer for the next subject number".into()))?;
        seq_from_sql(get(row, 0)?)
    }

    async fn load_subjects(&self, controller: ControllerId) -> StoreResult<Vec<SubjectRecord>> {
        self.query(
            "SELECT id, secret, pseudonym, created_at, number FROM subjects WHERE controller = $1 ORDER BY number",
            &[&controller.as_str()],
        )
        .await?
        .iter()
        .map(codec::subject)
        .collect()
    }

    async fn subjects_by_number(&self, controller: ControllerId, numbers: Vec<u64>) -> StoreResult<Vec<SubjectRecord>> {
        let numbers = numbers.into_iter().map(seq_to_sql).collect::<StoreResult<Vec<_>>>()?;
        self.query(
            "SELECT id, secret, pseudonym, created_at, number FROM subjects WHERE controller = $1 AND number = ANY($2)",
            &[&controller.as_str(), &numbers],
        )
        .await?
        .iter()
        .map(codec::subject)
        .collect()
    }

    async fn load_states(&self, controller: ControllerId) -> StoreResult<Vec<StoredState>> {
        self.query(
            "SELECT subject, purpose, action, version, since, method, seq FROM consent_state
             WHERE controller = $1 ORDER BY subject_no, purpose",
            &[&controller.as_str()],
        )
        .await?
        .iter()
        .map(codec::state)
        .collect()
    }

    async fn tree_nodes(&self, controller: ControllerId, nodes: Vec<(u8, u64)>) -> StoreResult<Vec<[u8; 32]>> {
        let owners = append::node_owners(&nodes)?;
        let rows = self.query(append::NODE_ROWS, &[&controller.as_str(), &owners]).await?;
        append::pick_nodes(&rows, &nodes)
    }

    async fn put_checkpoint(&self, controller: ControllerId, checkpoint: StoredCheckpoint) -> StoreResult<()> {
        self.execute(
            "INSERT INTO checkpoints (controller, tree_size, root, note, signed_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT DO NOTHING",
            &[
                &controller.as_str(),
                &seq_to_sql(checkpoint.tree_size)?,
                &&checkpoint.root[..],
                &checkpoint.note,
                &checkpoint.signed_at.unix_millis(),
            ],
        )
        .await
        .map(drop)
    }

    async fn latest_checkpoint(&self, controller: ControllerId) -> StoreResult<Option<StoredCheckpoint>> {
        Ok(self
            .read_checkpoints(
                "SELECT tree_size, root, note, signed_at FROM checkpoints WHERE controller = $1
                 ORDER BY tree_size DESC LIMIT 1",
                &controller,
            )
            .await?
            .pop())
    }

    async fn use_link(&self, controller: ControllerId, nonce: String, at: Timestamp) -> StoreResult<bool> {
        let inserted = self
            .execute(
                "INSERT INTO used_links (controller, nonce, used_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&controller.as_str(), &nonce, &at.unix_millis()],
            )
            .await?;
        Ok(inserted == 1)
    }

    async fn checkpoints(&self, controller: ControllerId) -> StoreResult<Vec<StoredCheckpoint>> {
        self.read_checkpoints(
            "SELECT tree_size, root, note, signed_at FROM checkpoints WHERE controller = $1 ORDER BY tree_size",
            &controller,
        )
        .await
    }

    async fn outbox(&self, controller: ControllerId, from: u64, limit: u64) -> StoreResult<Vec<OutboxEntry>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.query(delivery::OUTBOX, &[&controller.as_str(), &seq_to_sql(from)?, &limit])
            .await?
            .iter()
            .map(delivery::outbox_entry)
            .collect()
    }

    async fn prune_outbox(&self, controller: ControllerId, below: u64) -> StoreResult<u64> {
        self.execute(
            "DELETE FROM outbox WHERE controller = $1 AND seq < $2",
            &[&controller.as_str(), &seq_to_sql(below)?],
        )
        .await
    }

    async fn create_destination(&self, destination: Destination) -> StoreResult<()> {
        let mut pooled = self.pool.get().await?;
        delivery::create(pooled.conn()?, &destination).await
    }

    async fn destinations(&self, controller: Option<ControllerId>) -> StoreResult<Vec<Destination>> {
        let rows = match controller {
            Some(c) => {
                self.query(
                    "SELECT id, controller, kind, url, secret, purposes, created_at, cursor, attempts, first_failure,
                            next_attempt, last_error
                     FROM destinations WHERE controller = $1 ORDER BY created_at, id",
                    &[&c.as_str()],
                )
                .await?
            }
            None => {
                self.query(
                    "SELECT id, controller, kind, url, secret, purposes, created_at, cursor, attempts, first_failure,
                            next_attempt, last_error
                     FROM destinations ORDER BY controller, created_at, id",
                    &[],
                )
                .await?
            }
        };
        rows.iter().map(delivery::destination).collect()
    }

    async fn delete_destination(&self, controller: ControllerId, id: String) -> StoreResult<bool> {
        let n = self
            .execute("DELETE FROM destinations WHERE controller = $1 AND id = $2", &[&controller.as_str(), &id])
            .await?;
        Ok(n > 0)
    }

    async fn advance(
        &self,
        id: String,
        expected: u64,
        progress: Progress,
        deliveries: Vec<Delivery>,
    ) -> StoreResult<()> {
        let mut pooled = self.pool.get().await?;
        delivery::advance(pooled.conn()?, &id, expected, &progress, &deliveries).await
    }

    async fn ack_delivery(
        &self,
        controller: ControllerId,
        destination: String,
        seq: u64,
        at: Timestamp,
    ) -> StoreResult<Option<Delivery>> {
        let seq = seq_to_sql(seq)?;
        // COALESCE keeps the first confirmation's time; RETURNING answers in one round trip.
        self.query_opt(
            "UPDATE deliveries SET acked_at = COALESCE(acked_at, $4)
             WHERE controller = $1 AND destination = $2 AND seq = $3 AND delivered_at IS NOT NULL
             RETURNING destination, seq, committed_at, delivered_at, acked_at, attempts, error",
            &[&controller.as_str(), &destination, &seq, &at.unix_millis()],
        )
        .await?
        .as_ref()
        .map(delivery::delivery)
        .transpose()
    }

    async fn deliveries(&self, destination: String, filter: DeliveryFilter, limit: u64) -> StoreResult<Vec<Delivery>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.query(delivery::filter_sql(filter), &[&destination, &limit])
            .await?
            .iter()
            .map(delivery::delivery)
            .collect()
    }

    async fn try_lead(&self, role: &'static str) -> StoreResult<bool> {
        let mut leases = self.leases.lock().await;
        if let Some(lease) = leases.get(role)
            && lease.conn.client.is_closed()
        {
            // The session ended, and its lock with it: another node may lead now.
            leases.remove(role);
        }
        if !leases.contains_key(role) {
            let conn = self.pool.connect().await?;
            leases.insert(role, Lease { conn, held: false, checked: std::time::Instant::now() });
        }
        let Some(lease) = leases.get_mut(role) else {
            return Err(StoreError::Corrupt("a lease connection vanished".into()));
        };
        if lease.held && lease.checked.elapsed() >= LEASE_CHECK_EVERY {
            let answered = tokio::time::timeout(LEASE_CHECK_TIMEOUT, lease.conn.client.simple_query("SELECT 1")).await;
            if matches!(answered, Ok(Ok(_))) {
                lease.checked = std::time::Instant::now();
            } else {
                tracing::warn!(role, "the lease's connection stopped answering; giving the lease up");
                leases.remove(role);
                return Ok(false);
            }
        }
        if !lease.held {
            let key = format!("{}:{role}", self.schema);
            let row = lease
                .conn
                .query_opt("SELECT pg_try_advisory_lock($1, hashtext($2))", &[&LEASE_CLASS, &key])
                .await?
                .ok_or_else(|| StoreError::Corrupt("no answer from pg_try_advisory_lock".into()))?;
            lease.held = get(&row, 0)?;
        }
        Ok(lease.held)
    }
}
