//! Embedded SQLite backend.
//!
//! One writer thread owns the only write connection. Concurrent writes queue on a channel; the
//! writer drains whatever is waiting, runs each job in its own savepoint inside one transaction,
//! and commits once: one fsync (`synchronous=FULL` in WAL mode) then serves every job in the
//! group. A job that fails is rolled back to its savepoint alone, so batching never makes one
//! request's failure another's. Reads use a small pool of separate connections (WAL readers
//! never block the writer).

mod codec;
mod delivery;
mod migrations;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use assent_core::catalog::NoticeVersion;
use assent_core::event::Pseudonym;
use assent_core::{ControllerId, DataCategory, Purpose, Timestamp};
use assent_store::{
    ApiKeyRecord, AppendBatch, Appended, CatalogSnapshot, Controller, Delivery, DeliveryFilter, Destination,
    IdempotencyRecord, OutboxEntry, Progress, Store, StoreError, StoreResult, StoredCheckpoint, StoredEntry,
    StoredState, SubjectRecord,
};
use rusqlite::{Connection, OptionalExtension, params};

use crate::codec::{backend, from_json, to_json};
use crate::writer::Writer;

/// How the writer commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitMode {
    /// Many waiting requests share one transaction and one fsync (the default).
    Group,
    /// One transaction, and so one fsync, per request. Only for benchmarks: it is the baseline
    /// group commit is measured against.
    PerRequest,
}

#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub commit_mode: CommitMode,
    /// The most jobs one group transaction takes.
    pub max_group: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self { commit_mode: CommitMode::Group, max_group: 256 }
    }
}

/// The SQLite store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    writer: Writer,
    readers: Mutex<Vec<Connection>>,
}

fn open_connection(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open(path).map_err(backend)?;
    // WAL lets readers run beside the writer; FULL makes every commit fsync the WAL, which is
    // what a 2xx promises. busy_timeout lets admin commands share the file with a running server.
    // A 64 MiB page cache keeps the randomly-keyed indexes (pseudonyms) in memory; savepoint
    // journals live in memory too, since a crash discards them anyway. 8 KiB pages suit the
    // ledger's ~400-byte rows kept inline in its WITHOUT ROWID B-tree (set before the first
    // table exists; an existing database keeps its page size). secure_delete overwrites
    // what a delete frees, so an erased subject's secret does not linger in free pages.
    conn.execute_batch(
        "PRAGMA page_size=8192;
         PRAGMA journal_mode=WAL;
         PRAGMA synchronous=FULL;
         PRAGMA busy_timeout=10000;
         PRAGMA foreign_keys=OFF;
         PRAGMA temp_store=MEMORY;
         PRAGMA secure_delete=FAST;
         PRAGMA journal_size_limit=67108864;
         PRAGMA cache_size=-65536;",
    )
    .map_err(backend)?;
    Ok(conn)
}

/// Copies the WAL back into the database file off the writer's path. The writer's own
/// auto-checkpoint is off: it would otherwise stall whichever commit crossed the threshold.
fn spawn_checkpointer(path: &Path, writer: std::sync::Weak<Inner>) -> StoreResult<()> {
    let conn = open_connection(path)?;
    std::thread::Builder::new()
        .name("assent-sqlite-checkpoint".into())
        .spawn(move || {
            while writer.upgrade().is_some() {
                std::thread::sleep(std::time::Duration::from_millis(250));
                // PASSIVE never blocks the writer or readers; what it cannot copy now it copies
                // next time.
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
                }
            }
        })
        .map_err(|e| StoreError::Backend(Box::new(e)))?;
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path, options: SqliteOptions) -> StoreResult<Self> {
        let mut conn = open_connection(path)?;
        migrations::run(&mut conn)?;
        conn.execute_batch("PRAGMA wal_autocheckpoint=0").map_err(backend)?;
        let writer = Writer::spawn(conn, options)?;
        let inner = Arc::new(Inner { path: path.to_owned(), writer, readers: Mutex::new(Vec::new()) });
        spawn_checkpointer(path, Arc::downgrade(&inner))?;
        Ok(Self { inner })
    }

    /// Creates or replaces one catalog row (`data_categories` or `purposes`).
    async fn upsert_catalog_row(
        &self,
        table: &'static str,
        controller: ControllerId,
        id: String,
        body: String,
    ) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO {table} (controller, id, body) VALUES (?1, ?2, ?3)
             ON CONFLICT (controller, id) DO UPDATE SET body = excluded.body"
        );
        self.inner
            .writer
            .submit(move |conn, _| {
                conn.prepare_cached(&sql)
                    .and_then(|mut s| s.execute(params![controller.as_str(), id, body]))
                    .map_err(backend)?;
                Ok(())
            })
            .await
    }

    /// Copies the whole WAL into the database file and truncates it, after every commit queued
    /// so far. Called when a server stops; the busy timeout waits out readers still finishing.
    pub async fn fold_wal(&self) -> StoreResult<()> {
        // A write barrier first: every commit queued before this call is in the WAL.
        self.inner.writer.submit(|_, _| Ok(())).await?;
        let path = self.inner.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = open_connection(&path)?;
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).map_err(backend)
        })
        .await
        .map_err(|e| StoreError::Backend(Box::new(e)))?
    }

    /// Calls `f` with every stored entry of `controller` in `start..end`, in sequence order,
    /// borrowing each row's bytes instead of copying them: the offline audit reads the whole
    /// ledger, and per-row allocations were a large part of its cost. Blocking; it reads through
    /// its own read-only, memory-mapped connection, so it can never write.
    pub fn scan_ledger<E>(
        &self,
        controller: &ControllerId,
        start: u64,
        end: u64,
        mut f: impl FnMut(RawLedgerRow<'_>) -> Result<(), E>,
    ) -> StoreResult<Result<(), E>> {
        let conn = rusqlite::Connection::open_with_flags(
            &self.inner.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(backend)?;
        conn.execute_batch("PRAGMA mmap_size=4294967296; PRAGMA cache_size=-16384;").map_err(backend)?;
        let mut stmt = conn
            .prepare("SELECT seq, bytes, leaf_hash, nodes FROM ledger WHERE controller = ?1 AND seq >= ?2 AND seq < ?3 ORDER BY seq")
            .map_err(backend)?;
        let mut rows = stmt
            .query(params![controller.as_str(), codec::seq_to_sql(start)?, codec::seq_to_sql(end)?])
            .map_err(backend)?;
        while let Some(row) = rows.next().map_err(backend)? {
            let seq = codec::seq_from_sql(row.get(0).map_err(backend)?)?;
            let blob = |i: usize| -> StoreResult<&[u8]> {
                match row.get_ref(i).map_err(backend)? {
                    rusqlite::types::ValueRef::Blob(b) => Ok(b),
                    rusqlite::types::ValueRef::Null => Ok(&[]),
                    _ => Err(StoreError::Corrupt(format!("entry {seq}: column {i} is not a blob"))),
                }
            };
            let leaf_hash = codec::hash32(blob(2)?, "leaf_hash")?;
            let nodes = blob(3)?;
            if nodes.len() % 32 != 0 {
                return Err(StoreError::Corrupt(format!("entry {seq}: stored subtree hashes are not whole")));
            }
            if let Err(e) = f(RawLedgerRow { seq, bytes: blob(1)?, leaf_hash, nodes }) {
                return Ok(Err(e));
            }
        }
        Ok(Ok(()))
    }

    /// Runs `f` on a pooled read connection, off the async runtime.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().map_err(|_| StoreError::Corrupt("reader pool poisoned".into()))?.pop();
            let conn = match pooled {
                Some(c) => c,
                None => open_connection(&inner.path)?,
            };
            let result = f(&conn);
            if let Ok(mut pool) = inner.readers.lock() {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Backend(Box::new(e)))?
    }
}

/// Reads stored node `(level, index)`: level 0 is the leaf hash of entry `index`; a higher
/// node is kept in the row of the entry that completed it.
pub(crate) fn read_node(conn: &Connection, controller: &ControllerId, level: u8, index: u64) -> StoreResult<[u8; 32]> {
    let missing = || StoreError::NotFound(format!("tree node ({level}, {index})"));
    if level == 0 {
        let index = codec::seq_to_sql(index)?;
        let row: Option<Vec<u8>> = conn
            .prepare_cached("SELECT leaf_hash FROM ledger WHERE controller = ?1 AND seq = ?2")
            .and_then(|mut s| s.query_row(params![controller.as_str(), index], |r| r.get(0)).optional())
            .map_err(backend)?;
        return codec::hash32(&row.ok_or_else(missing)?, "leaf hash");
    }
    let owner = index
        .checked_add(1)
        .and_then(|i| i.checked_shl(u32::from(level)))
        .and_then(|i| i.checked_sub(1))
        .ok_or_else(missing)?;
    let owner = codec::seq_to_sql(owner)?;
    let row: Option<Option<Vec<u8>>> = conn
        .prepare_cached("SELECT nodes FROM ledger WHERE controller = ?1 AND seq = ?2")
        .and_then(|mut s| s.query_row(params![controller.as_str(), owner], |r| r.get(0)).optional())
        .map_err(backend)?;
    let nodes = row.flatten().ok_or_else(missing)?;
    let at = (usize::from(level) - 1) * 32;
    codec::hash32(nodes.get(at..at + 32).ok_or_else(missing)?, "tree node")
}

type ControllerRow = (String, String, String, String, i64, String);

fn read_controller(row: &rusqlite::Row<'_>) -> rusqlite::Result<ControllerRow> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?))
}

fn controller_from_row(raw: ControllerRow) -> StoreResult<Controller> {
    let (id, name, languages, profiles, created_at, origins) = raw;
    Ok(Controller {
        id: ControllerId::parse(&id).map_err(StoreError::Corrupt)?,
        name,
        languages: from_json(&languages)?,
        profiles: from_json(&profiles)?,
        allowed_origins: from_json(&origins)?,
        created_at: assent_core::Timestamp::from_unix_millis(created_at),
    })
}

fn read_entries(conn: &Connection, sql: &str, args: impl rusqlite::Params) -> StoreResult<Vec<StoredEntry>> {
    let mut stmt = conn.prepare_cached(sql).map_err(backend)?;
    let rows = stmt
        .query_map(args, |row| {
            let seq: i64 = row.get(0)?;
            let bytes: Vec<u8> = row.get(1)?;
            let leaf: Vec<u8> = row.get(2)?;
            let nodes: Option<Vec<u8>> = row.get(3)?;
            let subject_no: Option<i64> = row.get(4)?;
            Ok((seq, bytes, leaf, nodes, subject_no))
        })
        .map_err(backend)?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, bytes, leaf, nodes, subject_no) = row.map_err(backend)?;
        let nodes = nodes.unwrap_or_default();
        if nodes.len() % 32 != 0 {
            return Err(StoreError::Corrupt(format!("entry {seq}: stored subtree hashes are not whole")));
        }
        out.push(StoredEntry {
            seq: codec::seq_from_sql(seq)?,
            bytes,
            leaf_hash: codec::hash32(&leaf, "leaf_hash")?,
            nodes: nodes.chunks_exact(32).filter_map(|c| <[u8; 32]>::try_from(c).ok()).collect(),
            subject_number: subject_no.map(codec::seq_from_sql).transpose()?,
        });
    }
    Ok(out)
}

/// Rows of `SELECT id, secret, pseudonym, created_at, number FROM subjects`.
fn read_subjects(mut rows: rusqlite::Rows<'_>, out: &mut Vec<SubjectRecord>) -> StoreResult<()> {
    while let Some(r) = rows.next().map_err(backend)? {
        let blob = |i: usize| r.get_ref(i).and_then(|v| v.as_blob().map_err(Into::into)).map_err(backend);
        let id = r.get_ref(0).and_then(|v| v.as_str().map_err(Into::into)).map_err(backend)?;
        out.push(SubjectRecord {
            number: codec::seq_from_sql(r.get(4).map_err(backend)?)?,
            id: assent_core::SubjectId::parse(id).map_err(StoreError::Corrupt)?,
            secret: codec::hash32(blob(1)?, "secret")?,
            pseudonym: Pseudonym(codec::hash32(blob(2)?, "pseudonym")?),
            created_at: assent_core::Timestamp::from_unix_millis(r.get(3).map_err(backend)?),
        });
    }
    Ok(())
}

/// One ledger row as stored, borrowed from SQLite's row buffer.
#[derive(Debug, Clone, Copy)]
pub struct RawLedgerRow<'a> {
    pub seq: u64,
    pub bytes: &'a [u8],
    pub leaf_hash: [u8; 32],
    /// The subtree hashes this entry completed, 32 bytes each, lowest level first.
    pub nodes: &'a [u8],
}

impl Store for SqliteStore {
    async fn create_controller(&self, controller: Controller) -> StoreResult<()> {
        let languages = to_json(&controller.languages)?;
        let profiles = to_json(&controller.profiles)?;
        let origins = to_json(&controller.allowed_origins)?;
        self.inner
            .writer
            .submit(move |conn, _| {
                let inserted = conn
                    .prepare_cached(
                        "INSERT INTO controllers (id, name, languages, profiles, created_at, origins) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                         ON CONFLICT (id) DO NOTHING",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            controller.id.as_str(),
                            controller.name,
                            languages,
                            profiles,
                            controller.created_at.unix_millis(),
                            origins
                        ])
                    })
                    .map_err(backend)?;
                if inserted == 0 {
                    return Err(StoreError::AlreadyExists(controller.id.to_string()));
                }
                Ok(())
            })
            .await
    }

    async fn update_controller(&self, controller: Controller) -> StoreResult<()> {
        let languages = to_json(&controller.languages)?;
        let profiles = to_json(&controller.profiles)?;
        let origins = to_json(&controller.allowed_origins)?;
        self.inner
            .writer
            .submit(move |conn, _| {
                let updated = conn
                    .execute(
                        "UPDATE controllers SET name = ?2, languages = ?3, profiles = ?4, origins = ?5 WHERE id = ?1",
                        params![controller.id.as_str(), controller.name, languages, profiles, origins],
                    )
                    .map_err(backend)?;
                if updated == 0 {
                    return Err(StoreError::NotFound(controller.id.to_string()));
                }
                Ok(())
            })
            .await
    }

    async fn controller(&self, id: ControllerId) -> StoreResult<Option<Controller>> {
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT id, name, languages, profiles, created_at, origins FROM controllers WHERE id = ?1",
            )
            .and_then(|mut s| s.query_row([id.as_str()], read_controller).optional())
            .map_err(backend)?
            .map(controller_from_row)
            .transpose()
        })
        .await
    }

    async fn list_controllers(&self) -> StoreResult<Vec<Controller>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, name, languages, profiles, created_at, origins FROM controllers ORDER BY id",
                )
                .map_err(backend)?;
            let rows = stmt.query_map([], read_controller).map_err(backend)?;
            rows.map(|r| r.map_err(backend).and_then(controller_from_row)).collect()
        })
        .await
    }

    async fn create_api_key(&self, key: ApiKeyRecord) -> StoreResult<()> {
        let scopes = to_json(&key.scopes)?;
        self.inner
            .writer
            .submit(move |conn, _| {
                let exists: bool = conn
                    .query_row(
                        "SELECT EXISTS (SELECT 1 FROM controllers WHERE id = ?1)",
                        [key.controller.as_str()],
                        |r| r.get(0),
                    )
                    .map_err(backend)?;
                if !exists {
                    return Err(StoreError::NotFound(key.controller.to_string()));
                }
                conn.execute(
                    "INSERT INTO api_keys (hash, prefix, controller, scopes, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![&key.hash[..], key.prefix, key.controller.as_str(), scopes, key.created_at.unix_millis()],
                )
                .map_err(backend)?;
                Ok(())
            })
            .await
    }

    async fn find_api_key(&self, hash: [u8; 32]) -> StoreResult<Option<ApiKeyRecord>> {
        self.read(move |conn| {
            let row = conn
                .prepare_cached("SELECT prefix, controller, scopes, created_at FROM api_keys WHERE hash = ?1")
                .and_then(|mut s| {
                    s.query_row([&hash[..]], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, i64>(3)?,
                        ))
                    })
                    .optional()
                })
                .map_err(backend)?;
            row.map(|(prefix, controller, scopes, created_at)| {
                Ok(ApiKeyRecord {
                    hash,
                    prefix,
                    controller: ControllerId::parse(&controller).map_err(StoreError::Corrupt)?,
                    scopes: from_json(&scopes)?,
                    created_at: assent_core::Timestamp::from_unix_millis(created_at),
                })
            })
            .transpose()
        })
        .await
    }

    async fn put_data_category(&self, controller: ControllerId, category: DataCategory) -> StoreResult<()> {
        let body = to_json(&category)?;
        self.upsert_catalog_row("data_categories", controller, category.id.to_string(), body).await
    }

    async fn put_purpose(&self, controller: ControllerId, purpose: Purpose) -> StoreResult<()> {
        let body = to_json(&purpose)?;
        self.upsert_catalog_row("purposes", controller, purpose.id.to_string(), body).await
    }

    async fn load_catalog(&self, controller: ControllerId) -> StoreResult<CatalogSnapshot> {
        self.read(move |conn| {
            let mut snapshot = CatalogSnapshot::default();
            let bodies = |sql: &str| -> StoreResult<Vec<String>> {
                let mut stmt = conn.prepare_cached(sql).map_err(backend)?;
                let rows = stmt.query_map([controller.as_str()], |r| r.get::<_, String>(0)).map_err(backend)?;
                rows.map(|r| r.map_err(backend)).collect()
            };
            for body in bodies("SELECT body FROM data_categories WHERE controller = ?1 ORDER BY id")? {
                let category: DataCategory = from_json(&body)?;
                snapshot.data_categories.insert(category.id.clone(), category);
            }
            for body in bodies("SELECT body FROM purposes WHERE controller = ?1 ORDER BY id")? {
                let purpose: Purpose = from_json(&body)?;
                snapshot.purposes.insert(purpose.id.clone(), purpose);
            }
            for body in bodies("SELECT body FROM notice_versions WHERE controller = ?1 ORDER BY purpose, version")? {
                let version: NoticeVersion = from_json(&body)?;
                snapshot.versions.entry(version.purpose.clone()).or_default().push(version);
            }
            Ok(snapshot)
        })
        .await
    }

    async fn append(&self, batch: Arc<AppendBatch>) -> StoreResult<Appended> {
        self.inner.writer.submit(move |conn, seqs| writer::append(conn, seqs, &batch)).await
    }

    async fn find_idempotency(&self, controller: ControllerId, key: String) -> StoreResult<Option<IdempotencyRecord>> {
        self.read(move |conn| writer::find_idempotency(conn, &controller, &key)).await
    }

    async fn ledger_size(&self, controller: ControllerId) -> StoreResult<u64> {
        self.read(move |conn| writer::next_seq(conn, &controller)).await
    }

    async fn entries(&self, controller: ControllerId, start: u64, end: u64) -> StoreResult<Vec<StoredEntry>> {
        let (start, end) = (codec::seq_to_sql(start)?, codec::seq_to_sql(end)?);
        self.read(move |conn| {
            read_entries(
                conn,
                "SELECT seq, bytes, leaf_hash, nodes, subject_no FROM ledger WHERE controller = ?1 AND seq >= ?2 AND seq < ?3 ORDER BY seq",
                params![controller.as_str(), start, end],
            )
        })
        .await
    }

    async fn subject_entries(&self, controller: ControllerId, subject_number: u64) -> StoreResult<Vec<StoredEntry>> {
        let number = codec::seq_to_sql(subject_number)?;
        self.read(move |conn| {
            read_entries(
                conn,
                "SELECT seq, bytes, leaf_hash, nodes, subject_no FROM ledger WHERE controller = ?1 AND subject_no = ?2 ORDER BY seq",
                params![controller.as_str(), number],
            )
        })
        .await
    }

    async fn next_subject_number(&self, controller: ControllerId) -> StoreResult<u64> {
        self.read(move |conn| {
            let next: i64 = conn
                .prepare_cached(
                    "SELECT MAX(
                        COALESCE((SELECT MAX(number) + 1 FROM subjects WHERE controller = ?1), 0),
                        COALESCE((SELECT MAX(subject_no) + 1 FROM ledger WHERE controller = ?1 AND subject_no IS NOT NULL), 0))",
                )
                .and_then(|mut s| s.query_row([controller.as_str()], |r| r.get(0)))
                .map_err(backend)?;
            codec::seq_from_sql(next)
        })
        .await
    }

    async fn load_subjects(&self, controller: ControllerId) -> StoreResult<Vec<SubjectRecord>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, secret, pseudonym, created_at, number FROM subjects WHERE controller = ?1 ORDER BY number",
                )
                .map_err(backend)?;
            let mut out = Vec::new();
            read_subjects(stmt.query([controller.as_str()]).map_err(backend)?, &mut out)?;
            Ok(out)
        })
        .await
    }

    async fn subjects_by_number(&self, controller: ControllerId, numbers: Vec<u64>) -> StoreResult<Vec<SubjectRecord>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, secret, pseudonym, created_at, number FROM subjects WHERE controller = ?1 AND number = ?2",
                )
                .map_err(backend)?;
            let mut out = Vec::with_capacity(numbers.len());
            for number in numbers {
                let rows = stmt.query(params![controller.as_str(), codec::seq_to_sql(number)?]).map_err(backend)?;
                read_subjects(rows, &mut out)?;
            }
            Ok(out)
        })
        .await
    }

    async fn tree_nodes(&self, controller: ControllerId, nodes: Vec<(u8, u64)>) -> StoreResult<Vec<[u8; 32]>> {
        self.read(move |conn| nodes.iter().map(|(level, index)| read_node(conn, &controller, *level, *index)).collect())
            .await
    }

    async fn put_checkpoint(&self, controller: ControllerId, checkpoint: StoredCheckpoint) -> StoreResult<()> {
        let size = codec::seq_to_sql(checkpoint.tree_size)?;
        self.inner
            .writer
            .submit(move |conn, _| {
                conn.execute(
                    "INSERT INTO checkpoints (controller, tree_size, root, note, signed_at) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT DO NOTHING",
                    params![
                        controller.as_str(),
                        size,
                        &checkpoint.root[..],
                        checkpoint.note,
                        checkpoint.signed_at.unix_millis()
                    ],
                )
                .map_err(backend)?;
                Ok(())
            })
            .await
    }

    async fn use_link(&self, controller: ControllerId, nonce: String, at: assent_core::Timestamp) -> StoreResult<bool> {
        self.inner
            .writer
            .submit(move |conn, _| {
                let inserted = conn
                    .execute(
                        "INSERT INTO used_links (controller, nonce, used_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                        params![controller.as_str(), nonce, at.unix_millis()],
                    )
                    .map_err(backend)?;
                Ok(inserted == 1)
            })
            .await
    }

    async fn latest_checkpoint(&self, controller: ControllerId) -> StoreResult<Option<StoredCheckpoint>> {
        self.read(move |conn| {
            Ok(codec::read_checkpoints(
                conn,
                "SELECT tree_size, root, note, signed_at FROM checkpoints WHERE controller = ?1 ORDER BY tree_size DESC LIMIT 1",
                &controller,
            )?
            .pop())
        })
        .await
    }

    async fn checkpoints(&self, controller: ControllerId) -> StoreResult<Vec<StoredCheckpoint>> {
        self.read(move |conn| {
            codec::read_checkpoints(
                conn,
                "SELECT tree_size, root, note, signed_at FROM checkpoints WHERE controller = ?1 ORDER BY tree_size",
                &controller,
            )
        })
        .await
    }

    async fn outbox(&self, controller: ControllerId, from: u64, limit: u64) -> StoreResult<Vec<OutboxEntry>> {
        self.read(move |conn| delivery::outbox(conn, &controller, from, limit)).await
    }

    async fn prune_outbox(&self, controller: ControllerId, below: u64) -> StoreResult<u64> {
        self.inner.writer.submit(move |conn, _| delivery::prune(conn, &controller, below)).await
    }

    async fn create_destination(&self, destination: Destination) -> StoreResult<()> {
        self.inner.writer.submit(move |conn, _| delivery::create(conn, &destination)).await
    }

    async fn destinations(&self, controller: Option<ControllerId>) -> StoreResult<Vec<Destination>> {
        self.read(move |conn| delivery::list(conn, controller.as_ref())).await
    }

    async fn delete_destination(&self, controller: ControllerId, id: String) -> StoreResult<bool> {
        self.inner.writer.submit(move |conn, _| delivery::delete(conn, &controller, &id)).await
    }

    async fn advance(
        &self,
        id: String,
        expected: u64,
        progress: Progress,
        deliveries: Vec<Delivery>,
    ) -> StoreResult<()> {
        self.inner.writer.submit(move |conn, _| delivery::advance(conn, &id, expected, &progress, &deliveries)).await
    }

    async fn ack_delivery(
        &self,
        controller: ControllerId,
        destination: String,
        seq: u64,
        at: Timestamp,
    ) -> StoreResult<Option<Delivery>> {
        self.inner.writer.submit(move |conn, _| delivery::ack(conn, &controller, &destination, seq, at)).await
    }

    async fn deliveries(&self, destination: String, filter: DeliveryFilter, limit: u64) -> StoreResult<Vec<Delivery>> {
        self.read(move |conn| delivery::list_deliveries(conn, &destination, filter, limit)).await
    }

    async fn try_lead(&self, _role: &'static str) -> StoreResult<bool> {
        // The database file belongs to one server process.
        Ok(true)
    }

    async fn load_states(&self, controller: ControllerId) -> StoreResult<Vec<StoredState>> {
        self.read(move |conn| codec::load_states(conn, &controller)).await
    }
}
