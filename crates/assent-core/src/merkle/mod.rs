//! RFC 9162 Merkle tree math over stored complete subtrees.
//!
//! A node `(level, index)` is the hash of the complete subtree of `2^level` leaves starting at
//! leaf `index * 2^level`. Level 0 is the leaf hashes. Every tree hash, inclusion proof and
//! consistency proof for any tree size is a function of O(log n) such nodes, so the ledger
//! stores each node once, when its subtree completes, and never re-hashes the log to answer.
//!
//! The functions take a `get(level, index)` reader; which nodes they read depends only on the
//! sizes, never on hash values, so a caller can learn the set first (see [`nodes_needed`]) and
//! fetch it in one round trip.

use sha2::{Digest, Sha256};

use crate::crypto::Hash32;

/// Why a proof was rejected or could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("index {index} is not below tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("tree sizes {from} and {to} do not allow a proof")]
    BadSizes { from: u64, to: u64 },
    #[error("the proof has the wrong number of hashes")]
    WrongLength,
    #[error("the proof does not lead to the expected root")]
    RootMismatch,
    #[error("stored node (level {level}, index {index}) is missing")]
    MissingNode { level: u8, index: u64 },
}

/// SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash32, right: &Hash32) -> Hash32 {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

fn node_hash_bytes(left: &[u8], right: &[u8]) -> Hash32 {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// MTH of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash32 {
    Sha256::digest([]).into()
}

/// The largest power of two strictly below `n` (n >= 2).
fn split(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

fn level_of(size: u64) -> u8 {
    u8::try_from(size.trailing_zeros()).unwrap_or(u8::MAX)
}

/// The nodes that complete when leaf `n` (0-based) is appended: `(level, index)` for every
/// level >= 1 whose subtree ends at `n`. Each is `node_hash` of its two children.
pub fn completed_by(n: u64) -> impl Iterator<Item = (u8, u64)> {
    let count = n + 1;
    (1..=count.trailing_zeros()).map(move |level| {
        let level = u8::try_from(level).unwrap_or(u8::MAX);
        (level, (count >> level) - 1)
    })
}

type Get<'a, E> = dyn FnMut(u8, u64) -> Result<Hash32, E> + 'a;

/// MTH(D[lo:hi]) from stored nodes. `lo` is always aligned to the largest power of two <= the
/// range, as in every range RFC 9162's recursion produces.
fn range_hash<E>(lo: u64, hi: u64, get: &mut Get<'_, E>) -> Result<Hash32, E> {
    let n = hi - lo;
    if n == 0 {
        return Ok(empty_root());
    }
    if n.is_power_of_two() {
        return get(level_of(n), lo >> n.trailing_zeros());
    }
    let k = split(n);
    let left = range_hash(lo, lo + k, get)?;
    let right = range_hash(lo + k, hi, get)?;
    Ok(node_hash(&left, &right))
}

/// The tree hash (root) of the first `size` leaves.
pub fn root<E>(size: u64, get: &mut Get<'_, E>) -> Result<Hash32, E> {
    range_hash(0, size, get)
}

/// RFC 9162 §2.1.3.1 inclusion path of leaf `index` in the tree of `size` leaves.
pub fn inclusion_proof<E>(index: u64, size: u64, get: &mut Get<'_, E>) -> Result<Result<Vec<Hash32>, ProofError>, E> {
    if index >= size {
        return Ok(Err(ProofError::IndexOutOfRange { index, size }));
    }
    let mut path = Vec::new();
    let (mut lo, mut hi) = (0, size);
    let mut siblings = Vec::new();
    while hi - lo > 1 {
        let k = split(hi - lo);
        if index < lo + k {
            siblings.push((lo + k, hi));
            hi = lo + k;
        } else {
            siblings.push((lo, lo + k));
            lo += k;
        }
    }
    // The path lists siblings from the leaf upwards.
    for (a, b) in siblings.into_iter().rev() {
        path.push(range_hash(a, b, get)?);
    }
    Ok(Ok(path))
}

/// RFC 9162 §2.1.4.1 consistency proof from tree size `from` to tree size `to`.
pub fn consistency_proof<E>(from: u64, to: u64, get: &mut Get<'_, E>) -> Result<Result<Vec<Hash32>, ProofError>, E> {
    if from == 0 || from > to {
        return Ok(Err(ProofError::BadSizes { from, to }));
    }
    let mut parts = Vec::new();
    let (mut m, mut lo, mut hi, mut whole) = (from, 0u64, to, true);
    while m != hi - lo {
        let k = split(hi - lo);
        if m <= k {
            parts.push((lo + k, hi));
            hi = lo + k;
        } else {
            parts.push((lo, lo + k));
            m -= k;
            lo += k;
            whole = false;
        }
    }
    if !whole {
        parts.push((lo, hi));
    }
    let mut proof = Vec::with_capacity(parts.len());
    for (a, b) in parts.into_iter().rev() {
        proof.push(range_hash(a, b, get)?);
    }
    Ok(Ok(proof))
}

/// Which stored nodes `f` reads. `f` runs against zero hashes; the reads it makes depend only on
/// sizes, so the answer is exact.
pub fn nodes_needed<T>(f: impl FnOnce(&mut Get<'_, std::convert::Infallible>) -> T) -> Vec<(u8, u64)> {
    let mut wanted = Vec::new();
    let mut record = |level: u8, index: u64| -> Result<Hash32, std::convert::Infallible> {
        wanted.push((level, index));
        Ok([0; 32])
    };
    f(&mut record);
    wanted.sort_unstable();
    wanted.dedup();
    wanted
}

/// RFC 9162 §2.1.3.2: checks that `leaf` is at `index` in the tree of `size` leaves with `root`.
/// Hashes are slices so that malformed input is rejected rather than unrepresentable.
pub fn verify_inclusion(index: u64, size: u64, leaf: &[u8], proof: &[Hash32], root: &[u8]) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let Ok(leaf) = <Hash32>::try_from(leaf) else { return Err(ProofError::WrongLength) };
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = leaf;
    for p in proof {
        if s_n == 0 {
            return Err(ProofError::WrongLength);
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(ProofError::WrongLength);
    }
    if r[..] != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2: checks that the tree of `to` leaves with `root2` extends the tree of
/// `from` leaves with `root1`. A proof from the empty tree is meaningless and rejected.
pub fn verify_consistency(from: u64, to: u64, proof: &[Hash32], root1: &[u8], root2: &[u8]) -> Result<(), ProofError> {
    if from > to || from == 0 {
        return Err(ProofError::BadSizes { from, to });
    }
    if from == to {
        if !proof.is_empty() {
            return Err(ProofError::WrongLength);
        }
        return if root1 == root2 { Ok(()) } else { Err(ProofError::RootMismatch) };
    }
    if proof.is_empty() {
        return Err(ProofError::WrongLength);
    }
    let mut path: Vec<Hash32> = Vec::with_capacity(proof.len() + 1);
    if from.is_power_of_two() {
        path.push(<Hash32>::try_from(root1).map_err(|_| ProofError::RootMismatch)?);
    }
    path.extend_from_slice(proof);
    let (mut f_n, mut s_n) = (from - 1, to - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let mut items = path.iter();
    let Some(first) = items.next() else { return Err(ProofError::WrongLength) };
    let (mut fr, mut sr) = (*first, *first);
    for c in items {
        if s_n == 0 {
            return Err(ProofError::WrongLength);
        }
        if f_n & 1 == 1 || f_n == s_n {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(ProofError::WrongLength);
    }
    if fr[..] != *root1 || sr[..] != *root2 {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Whether `[start, end)` is a subtree in the sense of the Merkle Tree Certificates draft: not
/// empty, and `start` a multiple of the smallest power of two >= its size.
pub fn is_subtree(start: u64, end: u64) -> bool {
    start < end && (start == 0 || end - start <= (start & start.wrapping_neg()))
}

/// Checks that `leaf` is at `index` within the subtree `[start, end)` whose hash is `root`.
pub fn verify_subtree_inclusion(
    index: u64,
    start: u64,
    end: u64,
    leaf: &[u8],
    proof: &[Hash32],
    root: &[u8],
) -> Result<(), ProofError> {
    if !is_subtree(start, end) {
        return Err(ProofError::BadSizes { from: start, to: end });
    }
    if index < start || index >= end {
        return Err(ProofError::IndexOutOfRange { index, size: end });
    }
    verify_inclusion(index - start, end - start, leaf, proof, root)
}

/// Checks that the subtree `[start, end)` with hash `subtree` is part of the tree of `size`
/// leaves with `root`.
pub fn verify_subtree_consistency(
    start: u64,
    end: u64,
    size: u64,
    proof: &[Hash32],
    subtree: &[u8],
    root: &[u8],
) -> Result<(), ProofError> {
    if start == end {
        // The empty range: nothing to prove beyond its hash being the empty tree's.
        return if end <= size && proof.is_empty() && subtree == empty_root() {
            Ok(())
        } else {
            Err(ProofError::BadSizes { from: start, to: end })
        };
    }
    if !is_subtree(start, end) || end > size {
        return Err(ProofError::BadSizes { from: start, to: end });
    }

    let (mut f_n, mut s_n, mut t_n) = (start, end - 1, size - 1);
    if s_n == t_n {
        while f_n != s_n {
            f_n >>= 1;
            s_n >>= 1;
            t_n >>= 1;
        }
    } else {
        while f_n != s_n && s_n & 1 == 1 {
            f_n >>= 1;
            s_n >>= 1;
            t_n >>= 1;
        }
    }
    let mut rest = proof.iter();
    // Kept as bytes, not `Hash32`: with an empty proof the given hashes are compared as given.
    let (mut fr, mut sr): (Vec<u8>, Vec<u8>) = if f_n == s_n {
        (subtree.to_vec(), subtree.to_vec())
    } else {
        let Some(first) = rest.next() else { return Err(ProofError::WrongLength) };
        (first.to_vec(), first.to_vec())
    };
    for c in rest {
        if t_n == 0 {
            return Err(ProofError::WrongLength);
        }
        if s_n & 1 == 1 || s_n == t_n {
            if f_n < s_n {
                fr = node_hash_bytes(c, &fr).to_vec();
            }
            sr = node_hash_bytes(c, &sr).to_vec();
            while s_n & 1 == 0 {
                f_n >>= 1;
                s_n >>= 1;
                t_n >>= 1;
            }
        } else {
            sr = node_hash_bytes(&sr, c).to_vec();
        }
        f_n >>= 1;
        s_n >>= 1;
        t_n >>= 1;
    }
    if t_n != 0 {
        return Err(ProofError::WrongLength);
    }
    if fr != subtree || sr != root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Builds every stored node of a log from its leaf hashes, in memory: for verifying a stored
/// tree and for tests.
#[derive(Debug, Default, Clone)]
pub struct MemoryTree {
    /// `levels[l][i]` is node `(l, i)`.
    pub levels: Vec<Vec<Hash32>>,
}

impl MemoryTree {
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    pub fn push(&mut self, leaf: Hash32) {
        let n = self.size();
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        if let Some(leaves) = self.levels.first_mut() {
            leaves.push(leaf);
        }
        self.complete_above(n, 0);
    }

    /// Appends `chunk`, a tree built separately (say on another thread) over the leaves that come
    /// next, and computes the nodes above it that it completes. Returns `false`, changing
    /// nothing, unless this tree's size is a multiple of `2^height` of `chunk` (so each of its
    /// subtrees is one of this tree's).
    pub fn append_aligned(&mut self, chunk: MemoryTree) -> bool {
        let added = chunk.size();
        let height = chunk.levels.len().saturating_sub(1);
        let Some(span) = u32::try_from(height).ok().and_then(|h| 1u64.checked_shl(h)) else {
            return false;
        };
        let size = self.size();
        if added == 0 || !size.is_multiple_of(span) {
            return added == 0;
        }
        if self.levels.len() < chunk.levels.len() {
            self.levels.resize_with(chunk.levels.len(), Vec::new);
        }
        for (mine, theirs) in self.levels.iter_mut().zip(chunk.levels) {
            mine.extend(theirs);
        }
        // The chunk holds fewer than 2^(height+1) leaves, so at most one of them completes nodes
        // above its height: the one whose count is the first multiple of 2^(height+1) past `size`.
        let step = span * 2;
        let count = (size / step + 1) * step;
        if count <= size + added {
            self.complete_above(count - 1, height);
        }
        true
    }

    /// Computes the nodes above `from_level` that leaf `n` completes.
    fn complete_above(&mut self, n: u64, from_level: usize) {
        for (level, index) in completed_by(n).filter(|(l, _)| usize::from(*l) > from_level) {
            let l = usize::from(level);
            let children = self.levels.get(l - 1);
            let (Some(left), Some(right)) = (
                children.and_then(|c| c.get(usize::try_from(2 * index).ok()?)),
                children.and_then(|c| c.get(usize::try_from(2 * index + 1).ok()?)),
            ) else {
                return;
            };
            let hash = node_hash(left, right);
            if self.levels.len() <= l {
                self.levels.push(Vec::new());
            }
            if let Some(row) = self.levels.get_mut(l) {
                row.push(hash);
            }
        }
    }

    pub fn node(&self, level: u8, index: u64) -> Option<Hash32> {
        self.levels.get(usize::from(level))?.get(usize::try_from(index).ok()?).copied()
    }

    /// A reader over this tree for [`root`] and the proof functions.
    pub fn reader(&self) -> impl FnMut(u8, u64) -> Result<Hash32, ProofError> + '_ {
        |level, index| self.node(level, index).ok_or(ProofError::MissingNode { level, index })
    }
}

#[cfg(test)]
mod tests;
