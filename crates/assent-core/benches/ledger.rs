//! `cargo bench -p assent-core`: per-entry costs of the audit path (decode, leaf hash, tree).
//! A plain timing loop (no framework): each figure is the best of five runs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::hint::black_box;
use std::time::Instant;

use assent_core::crypto::leaf_hash;
use assent_core::encoding::{decode, decode_view, encode};
use assent_core::merkle::MemoryTree;

const ENTRY: &[u8] = br#"{"action":"grant","controller":"bench","kind":"consent","method":"api","notice_hash":"sha256:87a07e5265058fff712d13d28e76376b6d731faf7c4832aef302dee41215f593","purpose":"offers","recorded_at":"2026-11-29T08:59:19.442Z","subject":"bc94e00960372d928b723a1df730bd9f5e8774cabf593217bcd6c324e6434c68","v":1,"version":1}"#;

fn measure(name: &str, iterations: u32, mut f: impl FnMut()) {
    let best = (0..5)
        .map(|_| {
            let started = Instant::now();
            (0..iterations).for_each(|_| f());
            started.elapsed().as_nanos() as f64 / f64::from(iterations)
        })
        .fold(f64::INFINITY, f64::min);
    println!("{name:<32} {best:>8.0} ns/entry");
}

fn main() {
    let entry = decode(ENTRY).expect("the sample entry is canonical");
    measure("decode_view (audit path)", 200_000, || {
        black_box(decode_view(black_box(ENTRY)).unwrap());
    });
    measure("decode (owned)", 200_000, || {
        black_box(decode(black_box(ENTRY)).unwrap());
    });
    measure("encode", 200_000, || {
        black_box(encode(black_box(&entry)));
    });
    measure("leaf hash", 200_000, || {
        black_box(leaf_hash(black_box(ENTRY)));
    });
    let leaf = leaf_hash(ENTRY);
    measure("Merkle tree push", 1_000_000, || {
        thread_local!(static TREE: std::cell::RefCell<MemoryTree> = std::cell::RefCell::new(MemoryTree::default()));
        TREE.with_borrow_mut(|t| t.push(black_box(leaf)));
    });
}
