#!/usr/bin/env python3
"""Independent audit of an Assent ledger: rebuild the Merkle root from the entries endpoint and
compare it with a signed checkpoint. Standard library only; it shares no code with Assent.

    python3 docs/audit.py --url http://127.0.0.1:8380 --key $AUDIT_KEY --checkpoint checkpoint.txt

Check the checkpoint's signature first (`assent checkpoint verify checkpoint.txt --public-key
demo.vkey`, or any C2SP signed-note tool): this script then proves the entries you were served
are exactly the ones the signature commits to (RFC 9162: leaf = SHA-256(0x00 || entry),
node = SHA-256(0x01 || left || right)).
"""
import argparse
import base64
import hashlib
import json
import sys
import urllib.request
from collections import Counter


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_root(leaves):
    """RFC 9162 MTH, computed bottom-up: an unpaired last node is promoted unchanged."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = list(leaves)
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--key", required=True, help="an API key with the audit scope")
    ap.add_argument("--checkpoint", required=True, help="a signed checkpoint note saved earlier")
    args = ap.parse_args()

    lines = open(args.checkpoint, encoding="utf-8").read().split("\n")
    origin, size, root = lines[0], int(lines[1]), base64.b64decode(lines[2])

    leaves, kinds = [], Counter()
    for start in range(0, size, 1000):
        end = min(start + 1000, size)
        req = urllib.request.Request(
            f"{args.url}/v1/ledger/entries?start={start}&end={end}",
            headers={"Authorization": f"Bearer {args.key}"},
        )
        with urllib.request.urlopen(req) as resp:
            page = json.load(resp)["entries"]
        for i, e in enumerate(page):
            if e["index"] != start + i:
                print(f"FAIL: expected entry {start + i}, got {e['index']}")
                return 1
            data = base64.b64decode(e["data"])
            kinds[json.loads(data)["kind"]] += 1
            leaves.append(leaf_hash(data))

    if len(leaves) != size:
        print(f"FAIL: the checkpoint covers {size} entries, the server returned {len(leaves)}")
        return 1
    computed = merkle_root(leaves)
    if computed != root:
        print(f"FAIL: rebuilt root {base64.b64encode(computed).decode()} != signed root {lines[2]}")
        return 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    print(f"OK: {origin}: the {size} entries ({summary}) rebuild the signed root {lines[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
