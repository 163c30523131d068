//! The fast path of group commit: every batch of a group that targets one controller, checked
//! with one read of each kind and written with one statement.
//!
//! The per-batch path (`append::write`) costs each batch a savepoint and two or three round
//! trips; a group of 64 single events then spends most of its time waiting on the network. Here
//! the whole group is planned at once (`plan.rs`: one read of each kind, then the same checks
//! in order, each batch against the database and the batches before it), so each batch gets
//! the answer it would get alone.
//!
//! Batches that erase a
//! customer or publish a notice are left to the per-batch path (they are rare, and erasure
//! deletes rows the checks here read). If the one statement fails (a value PostgreSQL refuses,
//! say), the writer rolls the whole attempt back and runs the group through the per-batch path,
//! which isolates the batch at fault.

use std::collections::HashMap;
use std::sync::Arc;

use assent_store::{AppendBatch, Appended, StoreResult};

use crate::append::{self, subtrees};
use crate::plan::{Plan, read_known};
use crate::pool::Tx;

/// Whether `batch` may take the fast path.
pub(crate) fn eligible(batch: &AppendBatch) -> bool {
    batch.erase_subject.is_none() && batch.notice_versions.is_empty()
}

/// Writes `batches`, all of `controller` and all [`eligible`], in order: one result per batch.
/// `Err` means the attempt failed as a whole and nothing of it may be kept.
pub(crate) async fn write(
    tx: &mut Tx<'_>,
    controller: &str,
    batches: &[Arc<AppendBatch>],
) -> StoreResult<Vec<StoreResult<Appended>>> {
    let head = append::lock_head(tx, controller).await?;
    let batches: Vec<&AppendBatch> = batches.iter().map(|b| &**b).collect();
    let mut known = read_known(tx, controller, &batches, head.next_seq, HashMap::new()).await?;
    let mut tree = std::mem::take(&mut known.edge);
    let mut plan = Plan::new(&head, known);
    let results = batches.iter().map(|batch| plan.batch(batch, None)).collect::<Vec<_>>();
    let (next_seq, next_subject, mut rows) = plan.finish();
    if results.iter().any(Result::is_ok) {
        rows.set_nodes(subtrees(head.next_seq, &rows.leaves(), &mut tree)?);
        rows.insert(tx, controller, next_seq, next_subject).await?;
    }
    Ok(results)
}
