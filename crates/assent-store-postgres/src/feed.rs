//! The change feed: how a node learns what other nodes wrote.
//!
//! Every append transaction runs `pg_notify` before it commits (see `writer.rs`), and so does
//! every catalog or controller change; PostgreSQL delivers a notification only if, and once, its
//! transaction commits. Each node keeps one extra connection that `LISTEN`s and turns the
//! notifications into [`Change`]s. Notifications carry only which controller changed: the node
//! then reads the ledger after the last entry it applied, so a lost or coalesced notification
//! costs nothing as long as a later one (or a resync) follows. While the connection is down
//! nothing arrives, so every (re)connect starts with [`Change::Resync`].

use std::time::Duration;

use assent_core::ControllerId;
use assent_store::Change;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

/// The channel a schema's changes are announced on. Notifications are database-wide, so the
/// name carries (a hash of) the schema: deployments in other schemas of the same database do not
/// hear each other. A plain identifier, so `LISTEN` needs no quoting.
pub(crate) fn channel(schema: &str) -> String {
    let hash = assent_core::crypto::sha256(schema.as_bytes());
    format!("assent_{}", assent_core::crypto::to_hex(hash.get(..8).unwrap_or_default()))
}

/// Payload prefixes: the ledger grew, or the catalog or settings changed.
pub(crate) const LEDGER: &str = "L ";
pub(crate) const CATALOG: &str = "C ";

/// How long to wait before reconnecting after the listening connection failed.
const RECONNECT_AFTER: Duration = Duration::from_millis(500);

/// Listens until `out` is dropped, reconnecting whenever the connection fails.
pub(crate) async fn run(config: tokio_postgres::Config, channel: String, out: mpsc::Sender<Change>) {
    loop {
        match listen(&config, &channel, &out).await {
            Ok(()) => return,
            Err(e) => tracing::warn!(error = %e, "the PostgreSQL change feed lost its connection; reconnecting"),
        }
        tokio::select! {
            () = tokio::time::sleep(RECONNECT_AFTER) => {}
            () = out.closed() => return,
        }
    }
}

/// One connection's life. `Ok` when the receiver went away, `Err` when the connection did.
async fn listen(config: &tokio_postgres::Config, channel: &str, out: &mpsc::Sender<Change>) -> Result<(), String> {
    let (client, mut connection) = config.connect(NoTls).await.map_err(|e| e.to_string())?;
    let (notes, mut incoming) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            let message = std::future::poll_fn(|cx| connection.poll_message(cx)).await;
            let note = match message {
                Some(Ok(AsyncMessage::Notification(n))) => Ok(n.payload().to_owned()),
                Some(Ok(_)) => continue,
                Some(Err(e)) => Err(e.to_string()),
                None => Err("the server closed the connection".to_owned()),
            };
            let last = note.is_err();
            if notes.send(note).is_err() || last {
                return;
            }
        }
    });
    let result = async {
        client.batch_execute(&format!("LISTEN {channel}")).await.map_err(|e| e.to_string())?;
        // Whatever was written while no one listened is picked up by reading from the last
        // entry each node applied.
        if out.send(Change::Resync).await.is_err() {
            return Ok(());
        }
        loop {
            tokio::select! {
                note = incoming.recv() => match note {
                    Some(Ok(payload)) => {
                        if let Some(change) = parse(&payload)
                            && out.send(change).await.is_err()
                        {
                            return Ok(());
                        }
                    }
                    Some(Err(e)) => return Err(e),
                    None => return Err("the connection's driver stopped".to_owned()),
                },
                () = out.closed() => return Ok(()),
            }
        }
    }
    .await;
    driver.abort();
    result
}

fn parse(payload: &str) -> Option<Change> {
    let (kind, controller) = payload.split_at_checked(2)?;
    let controller = ControllerId::parse(controller).ok()?;
    match kind {
        LEDGER => Some(Change::Ledger(controller)),
        CATALOG => Some(Change::Catalog(controller)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_the_kind_and_the_controller() {
        let demo = ControllerId::parse("demo").ok();
        assert_eq!(parse("L demo"), demo.clone().map(Change::Ledger));
        assert_eq!(parse("C demo"), demo.map(Change::Catalog));
        assert_eq!(parse("X demo"), None);
        assert_eq!(parse("L Not A Slug"), None);
        assert_eq!(parse("L"), None);
    }
}
