//! Known answers from `shared/vectors/tlog` and a property test against an independent
//! implementation (the ct-merkle crate).

use std::path::{Path, PathBuf};

use base64::Engine;
use proptest::prelude::*;

use super::*;
use crate::crypto::leaf_hash;

fn vectors_dir() -> PathBuf {
    // The vectors live in `shared/` beside the repository, in development and in CI alike.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors/tlog")
}

fn b64(s: &serde_json::Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s.as_str().unwrap_or_default()).unwrap_or_default()
}

fn hash(v: &serde_json::Value) -> Option<Hash32> {
    // A proof element that is not exactly 32 bytes makes the whole proof malformed.
    b64(v).try_into().ok()
}

fn hashes(v: &serde_json::Value) -> Option<Vec<Hash32>> {
    v.as_array().map(|a| a.iter().map(hash).collect::<Option<Vec<_>>>()).unwrap_or(Some(Vec::new()))
}

fn files(kind: &str) -> Vec<(PathBuf, serde_json::Value)> {
    let root = vectors_dir().join(kind);
    let mut out = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("vectors missing at {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                let value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                out.push((path, value));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!out.is_empty(), "no vectors under {}", root.display());
    out
}

#[test]
fn every_inclusion_vector_is_judged_correctly() {
    let mut checked = 0;
    for (path, v) in files("inclusion") {
        let want_err = v["wantErr"].as_bool().unwrap();
        let outcome = (|| {
            let proof = hashes(&v["proof"]).ok_or(ProofError::WrongLength)?;
            verify_inclusion(num(&v["leafIdx"]), num(&v["treeSize"]), &b64(&v["leafHash"]), &proof, &b64(&v["root"]))
        })();
        assert_eq!(outcome.is_err(), want_err, "{}: {outcome:?}", path.display());
        checked += 1;
    }
    assert_eq!(checked, 98);
}

/// Sizes are JSON numbers; one vector uses 2^63 + 2, beyond what serde_json reads as u64 from a
/// float, so read it exactly from its text.
fn num(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| v.to_string().parse().unwrap())
}

#[test]
fn every_subtree_inclusion_vector_is_judged_correctly() {
    let mut checked = 0;
    for (path, v) in files("subtreeinclusion") {
        let want_err = v["wantErr"].as_bool().unwrap();
        let outcome = (|| {
            let proof = hashes(&v["proof"]).ok_or(ProofError::WrongLength)?;
            verify_subtree_inclusion(
                num(&v["leafIdx"]),
                num(&v["start"]),
                num(&v["end"]),
                &b64(&v["leafHash"]),
                &proof,
                &b64(&v["root"]),
            )
        })();
        assert_eq!(outcome.is_err(), want_err, "{}: {outcome:?}", path.display());
        checked += 1;
    }
    assert_eq!(checked, 204);
}

#[test]
fn every_subtree_consistency_vector_is_judged_correctly() {
    let mut checked = 0;
    for (path, v) in files("subtreeconsistency") {
        let want_err = v["wantErr"].as_bool().unwrap();
        let outcome = (|| {
            let proof = hashes(&v["proof"]).ok_or(ProofError::WrongLength)?;
            verify_subtree_consistency(
                num(&v["start"]),
                num(&v["end"]),
                num(&v["size"]),
                &proof,
                &b64(&v["root1"]),
                &b64(&v["root2"]),
            )
        })();
        assert_eq!(outcome.is_err(), want_err, "{}: {outcome:?}", path.display());
        checked += 1;
    }
    assert_eq!(checked, 118);
}

#[test]
fn every_consistency_vector_is_judged_correctly() {
    let mut checked = 0;
    for (path, v) in files("consistency") {
        let want_err = v["wantErr"].as_bool().unwrap();
        let outcome = (|| {
            let proof = hashes(&v["proof"]).ok_or(ProofError::WrongLength)?;
            verify_consistency(num(&v["size1"]), num(&v["size2"]), &proof, &b64(&v["root1"]), &b64(&v["root2"]))
        })();
        assert_eq!(outcome.is_err(), want_err, "{}: {outcome:?}", path.display());
        checked += 1;
    }
    assert_eq!(checked, 98);
}

/// The leaves and roots of transparency-dev's `testonly` reference tree.
#[test]
fn stored_node_roots_match_the_reference_tree() {
    let leaves: [&[u8]; 8] = [
        b"",
        &[0x00],
        &[0x10],
        &[0x20, 0x21],
        &[0x30, 0x31],
        &[0x40, 0x41, 0x42, 0x43],
        &[0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
        &[0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f],
    ];
    let mut tree = MemoryTree::default();
    for leaf in leaves {
        tree.push(leaf_hash(leaf));
    }
    let eighth = root(8, &mut tree.reader()).unwrap();
    assert_eq!(crate::crypto::to_hex(&eighth), "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328");
    assert_eq!(crate::crypto::to_hex(&root(0, &mut tree.reader()).unwrap()), crate::crypto::to_hex(&empty_root()));
}

#[test]
fn nodes_needed_lists_exactly_what_a_proof_reads() {
    let needed = nodes_needed(|get| inclusion_proof(5, 13, get).map(|_| ()));
    let mut tree = MemoryTree::default();
    (0..13u8).for_each(|i| tree.push(leaf_hash(&[i])));
    let mut reads = Vec::new();
    let mut reader = |level: u8, index: u64| {
        reads.push((level, index));
        tree.node(level, index).ok_or(ProofError::MissingNode { level, index })
    };
    inclusion_proof(5, 13, &mut reader).unwrap().unwrap();
    reads.sort_unstable();
    reads.dedup();
    assert_eq!(needed, reads);
    assert!(needed.len() <= 8, "O(log n) reads, got {needed:?}");
}

proptest! {
    #[test]
    fn proofs_from_stored_nodes_match_ct_merkle(sizes in (1u64..300, 1u64..300), pick in any::<u64>()) {
        let (a, b) = sizes;
        let (from, to) = (a.min(b), a.max(b));
        let mut ours = MemoryTree::default();
        let mut oracle = ct_merkle::mem_backed_tree::MemoryBackedTree::<sha2::Sha256, Vec<u8>>::new();
        for i in 0..to {
            let data = i.to_be_bytes().to_vec();
            ours.push(leaf_hash(&data));
            oracle.push(data);
        }
        let root_to = root(to, &mut ours.reader()).unwrap();
        let oracle_root = oracle.root();
        prop_assert_eq!(&root_to[..], &oracle_root.as_bytes()[..]);

        let index = pick % to;
        let path = inclusion_proof(index, to, &mut ours.reader()).unwrap().unwrap();
        let expected = oracle.prove_inclusion(usize::try_from(index).unwrap());
        prop_assert_eq!(path.concat(), expected.as_bytes().to_vec());
        prop_assert!(verify_inclusion(index, to, &leaf_hash(&index.to_be_bytes()), &path, &root_to).is_ok());

        let proof = consistency_proof(from, to, &mut ours.reader()).unwrap().unwrap();
        let root_from = root(from, &mut ours.reader()).unwrap();
        prop_assert!(verify_consistency(from, to, &proof, &root_from, &root_to).is_ok());
        if from < to {
            let expected = oracle.prove_consistency(usize::try_from(to - from).unwrap());
            prop_assert_eq!(proof.concat(), expected.as_bytes().to_vec());
        }
        // A proof for one tree never verifies another.
        if from < to {
            let mut wrong = root_to;
            wrong[0] ^= 1;
            prop_assert!(verify_consistency(from, to, &proof, &root_from, &wrong).is_err());
            prop_assert!(verify_inclusion(index, to, &leaf_hash(b"other"), &path, &root_to).is_err());
        }
    }
}

proptest! {
    #[test]
    fn trees_built_in_aligned_chunks_equal_trees_built_leaf_by_leaf(
        chunk_bits in 0u32..6, whole_chunks in 0u64..9, tail in 0u64..64,
    ) {
        let chunk = 1u64 << chunk_bits;
        let total = whole_chunks * chunk + tail % chunk;
        let mut one_by_one = MemoryTree::default();
        let mut chunked = MemoryTree::default();
        let mut start = 0;
        while start < total {
            let end = (start + chunk).min(total);
            let mut part = MemoryTree::default();
            for i in start..end {
                one_by_one.push(leaf_hash(&i.to_be_bytes()));
                part.push(leaf_hash(&i.to_be_bytes()));
            }
            prop_assert!(chunked.append_aligned(part));
            start = end;
        }
        prop_assert_eq!(&chunked.levels, &one_by_one.levels);
    }

    #[test]
    fn a_misaligned_chunk_is_refused(offset in 1u64..8) {
        let mut tree = MemoryTree::default();
        (0..offset).for_each(|i| tree.push(leaf_hash(&i.to_be_bytes())));
        let mut part = MemoryTree::default();
        (0..8u64).for_each(|i| part.push(leaf_hash(&i.to_be_bytes())));
        let before = tree.levels.clone();
        prop_assert!(!tree.append_aligned(part));
        prop_assert_eq!(tree.levels, before);
    }
}
