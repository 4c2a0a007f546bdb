"""Merkle trees over JSON leaves: one signed root stands for many people's certificates.

A leaf's hash is SHA-256 of ``0x00`` and the leaf's compact canonical JSON
(``signing.compact``); a node's is SHA-256 of ``0x01``, the left and the right
child (32 bytes each).  Level by level, neighbours pair up; an odd last node
goes up unchanged.  An inclusion proof lists, from the leaf up, each sibling's
hash and the side it is on; folding it onto the leaf's hash gives the root.
"""

from __future__ import annotations

import hashlib

from lifecycle.signing import compact

LEAF, NODE = b"\x00", b"\x01"
DESCRIPTION = {
    "hash": "SHA-256",
    "leaf": "SHA-256(0x00 || compact canonical JSON of the leaf)",
    "node": "SHA-256(0x01 || left || right); an odd last node goes up unchanged",
}


def leaf_hash(leaf: dict) -> bytes:
    return hashlib.sha256(LEAF + compact(leaf)).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE + left + right).digest()


def _levels(hashes: list[bytes]) -> list[list[bytes]]:
    levels = [hashes]
    while len(levels[-1]) > 1:
        below = levels[-1]
        levels.append([_node(*below[i : i + 2]) if i + 1 < len(below) else below[i] for i in range(0, len(below), 2)])
    return levels


def root(leaves: list[dict]) -> str:
    """The hex root over ``leaves`` in their order (of none: SHA-256 of nothing)."""
    if not leaves:
        return hashlib.sha256(b"").hexdigest()
    return _levels([leaf_hash(leaf) for leaf in leaves])[-1][0].hex()


def proof(leaves: list[dict], index: int) -> list[dict]:
    """The inclusion proof of ``leaves[index]``: ``[{"side": "left"|"right", "hash": hex}, …]``."""
    path = []
    for level in _levels([leaf_hash(leaf) for leaf in leaves])[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            path.append({"side": "left" if sibling < index else "right", "hash": level[sibling].hex()})
        index //= 2
    return path


def fold(leaf: dict, path: list[dict]) -> str:
    """The root a leaf and its proof lead to (hex)."""
    current = leaf_hash(leaf)
    for step in path:
        sibling = bytes.fromhex(str(step["hash"]))
        current = _node(sibling, current) if step["side"] == "left" else _node(current, sibling)
    return current.hex()
