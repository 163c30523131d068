//! A small connection pool.
//!
//! Written here rather than taken from deadpool-postgres: all it needs is a semaphore bounding
//! how many connections are in use, a stack of idle ones, and a setup statement run on each new
//! connection (`SET search_path`), which is less code than configuring a general pool. Each
//! connection keeps its own cache of prepared statements, so a hot query is parsed and planned
//! once per connection, not once per call.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use assent_store::{StoreError, StoreResult};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient, NoTls, Row, Statement, Transaction};

use crate::codec::db;

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Prepared statements of one connection, by their SQL text.
#[derive(Default)]
pub(crate) struct Statements(HashMap<&'static str, Statement>);

impl Statements {
    async fn prepare<C: GenericClient + Sync>(&mut self, client: &C, sql: &'static str) -> StoreResult<Statement> {
        if let Some(statement) = self.0.get(sql) {
            return Ok(statement.clone());
        }
        let statement = client.prepare(sql).await.map_err(db)?;
        self.0.insert(sql, statement.clone());
        Ok(statement)
    }

    async fn query<C: GenericClient + Sync>(
        &mut self,
        client: &C,
        sql: &'static str,
        params: Params<'_>,
    ) -> StoreResult<Vec<Row>> {
        let statement = self.prepare(client, sql).await?;
        client.query(&statement, params).await.map_err(db)
    }

    async fn query_opt<C: GenericClient + Sync>(
        &mut self,
        client: &C,
        sql: &'static str,
        params: Params<'_>,
    ) -> StoreResult<Option<Row>> {
        let statement = self.prepare(client, sql).await?;
        client.query_opt(&statement, params).await.map_err(db)
    }

    async fn execute<C: GenericClient + Sync>(
        &mut self,
        client: &C,
        sql: &'static str,
        params: Params<'_>,
    ) -> StoreResult<u64> {
        let statement = self.prepare(client, sql).await?;
        client.execute(&statement, params).await.map_err(db)
    }
}

/// One open connection and its statement cache.
pub(crate) struct Conn {
    pub(crate) client: Client,
    pub(crate) statements: Statements,
}

impl Conn {
    pub(crate) async fn query(&mut self, sql: &'static str, params: Params<'_>) -> StoreResult<Vec<Row>> {
        self.statements.query(&self.client, sql, params).await
    }

    pub(crate) async fn query_opt(&mut self, sql: &'static str, params: Params<'_>) -> StoreResult<Option<Row>> {
        self.statements.query_opt(&self.client, sql, params).await
    }

    pub(crate) async fn execute(&mut self, sql: &'static str, params: Params<'_>) -> StoreResult<u64> {
        self.statements.execute(&self.client, sql, params).await
    }

    /// Starts a READ COMMITTED transaction whatever the server's default isolation: the append
    /// protocol relies on each statement seeing what committed before it started (a head row
    /// another node inserted while this one waited, say).
    pub(crate) async fn transaction(&mut self) -> StoreResult<Tx<'_>> {
        let tx = self
            .client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::ReadCommitted)
            .start()
            .await
            .map_err(db)?;
        Ok(Tx { tx, statements: &mut self.statements })
    }
}

/// A transaction on a pooled connection, with that connection's statement cache. Dropped
/// without [`Tx::commit`], it rolls back.
pub(crate) struct Tx<'a> {
    tx: Transaction<'a>,
    statements: &'a mut Statements,
}

impl Tx<'_> {
    pub(crate) async fn query(&mut self, sql: &'static str, params: Params<'_>) -> StoreResult<Vec<Row>> {
        self.statements.query(&self.tx, sql, params).await
    }

    pub(crate) async fn query_opt(&mut self, sql: &'static str, params: Params<'_>) -> StoreResult<Option<Row>> {
        self.statements.query_opt(&self.tx, sql, params).await
    }

    pub(crate) async fn execute(&mut self, sql: &'static str, params: Params<'_>) -> StoreResult<u64> {
        self.statements.execute(&self.tx, sql, params).await
    }

    /// Runs `sql` (one or more statements, no parameters) in one round trip: savepoints.
    pub(crate) async fn batch_execute(&self, sql: &str) -> StoreResult<()> {
        self.tx.batch_execute(sql).await.map_err(db)
    }

    pub(crate) async fn commit(self) -> StoreResult<()> {
        self.tx.commit().await.map_err(db)
    }

    /// Rolls back and waits for it, so the rows this transaction locked are free when it returns.
    pub(crate) async fn rollback(self) -> StoreResult<()> {
        self.tx.rollback().await.map_err(db)
    }
}

pub(crate) struct Pool {
    config: tokio_postgres::Config,
    /// Run on every new connection before its first use.
    setup: String,
    idle: Mutex<Vec<Conn>>,
    /// One permit per connection that may be in use at once.
    slots: Arc<Semaphore>,
    size: usize,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The config is left out: it may hold a password.
        let idle = self.idle.lock().map(|idle| idle.len()).ok();
        f.debug_struct("Pool").field("size", &self.size).field("idle", &idle).finish_non_exhaustive()
    }
}

impl Pool {
    pub(crate) fn new(config: tokio_postgres::Config, setup: String, size: usize) -> Self {
        let size = size.max(1);
        Self { config, setup, idle: Mutex::new(Vec::new()), slots: Arc::new(Semaphore::new(size)), size }
    }

    pub(crate) fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// A connection: an idle one if there is one still open, else a new one. Waits while every
    /// permitted connection is in use.
    pub(crate) async fn get(self: &Arc<Self>) -> StoreResult<Pooled> {
        let permit = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Corrupt("the PostgreSQL connection pool is closed".into()))?;
        loop {
            let idle = self.idle.lock().map_err(|_| StoreError::Corrupt("connection pool poisoned".into()))?.pop();
            match idle {
                // The server or the network closed it while it sat idle: drop it, try the next.
                Some(conn) if conn.client.is_closed() => {}
                Some(conn) => return Ok(Pooled { conn: Some(conn), pool: Arc::clone(self), _permit: permit }),
                None => break,
            }
        }
        let conn = self.connect().await?;
        Ok(Pooled { conn: Some(conn), pool: Arc::clone(self), _permit: permit })
    }

    /// A new connection outside the pool's count: the append writer's own (see `writer.rs`).
    pub(crate) async fn connect(&self) -> StoreResult<Conn> {
        let (client, connection) = self.config.connect(NoTls).await.map_err(db)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "PostgreSQL connection ended with an error");
            }
        });
        client.batch_execute(&self.setup).await.map_err(db)?;
        // A 2xx promises the write is durable: refuse to run with commits that only reach the
        // server's memory. `local`, `remote_write`, `remote_apply` and `on` all wait for this
        // server's WAL flush; only `off` does not.
        let synchronous: String =
            crate::codec::get(&client.query_one("SHOW synchronous_commit", &[]).await.map_err(db)?, 0)?;
        if synchronous == "off" {
            tracing::warn!("synchronous_commit is off for Assent's role or database; turning it on for its sessions");
            client.batch_execute("SET synchronous_commit TO on").await.map_err(db)?;
        }
        Ok(Conn { client, statements: Statements::default() })
    }
}

/// A connection lent by the pool; it goes back when dropped (unless it has closed).
pub(crate) struct Pooled {
    conn: Option<Conn>,
    pool: Arc<Pool>,
    _permit: OwnedSemaphorePermit,
}

impl Pooled {
    /// The connection. `conn` is only taken in `drop`, so this never fails in practice; it
    /// returns an error rather than panic all the same.
    pub(crate) fn conn(&mut self) -> StoreResult<&mut Conn> {
        self.conn.as_mut().ok_or_else(|| StoreError::Corrupt("a pooled connection was used after its return".into()))
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        // A transaction dropped without commit or rollback (its future was cancelled) has
        // already queued its ROLLBACK on this connection, ahead of whatever the next user sends.
        if let Some(conn) = self.conn.take()
            && !conn.client.is_closed()
            && let Ok(mut idle) = self.pool.idle.lock()
        {
            idle.push(conn);
        }
    }
}
