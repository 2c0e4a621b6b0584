"""Recorded outputs: what no injected randomness reaches (docs/PROTOCOL.md section 17.1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nacl.bindings as sodium

from conformance.vectors import Json
from protocol.e2e.keys import (
    IdentityKeyPair,
    KemKeyPair,
    kem_encapsulate,
)
from protocol.wire.errors import ProtocolError


class Recorded:
    """Recorded outputs (ML-KEM encapsulations, sealed boxes) from the existing files.

    A run keeps each recorded value still valid for the regenerated keys and makes a
    fresh one otherwise (docs/PROTOCOL.md section 17.4), so two runs give the same files.
    """

    def __init__(self, refresh: bool, directory: Path) -> None:
        self.old: dict[str, Json] = {}
        if not refresh:
            for path in directory.glob("*.json"):
                self.old[path.stem] = json.loads(path.read_text())
        self.fresh = 0
        self.kept = 0

    def lookup(self, file: str, *path: str | int) -> Any:
        node: Any = self.old.get(file)
        for step in path:
            if isinstance(step, int):
                if not isinstance(node, list) or step >= len(node):
                    return None
                node = node[step]
            else:
                if not isinstance(node, dict) or step not in node:
                    return None
                node = node[step]
        return node

    def kem(self, key: KemKeyPair, old: Any) -> tuple[bytes, bytes]:
        """(ciphertext, shared secret) for `key`: the recorded pair if it still fits."""
        if isinstance(old, dict):
            ct, ss = old.get("kem_ciphertext"), old.get("kem_shared_secret")
            if isinstance(ct, str) and isinstance(ss, str):
                try:
                    if key.decapsulate(bytes.fromhex(ct)) == bytes.fromhex(ss):
                        self.kept += 1
                        return bytes.fromhex(ct), bytes.fromhex(ss)
                except ProtocolError:
                    pass
        self.fresh += 1
        return kem_encapsulate(key.public)

    def seal(self, recipient: IdentityKeyPair, content: bytes, old: Any) -> bytes:
        if isinstance(old, str):
            try:
                opened = sodium.crypto_box_seal_open(
                    bytes.fromhex(old), recipient.dh_public(), recipient.dh_private()
                )
                if bytes(opened) == content:
                    self.kept += 1
                    return bytes.fromhex(old)
            except Exception:  # any failure means: make a new box
                pass
        self.fresh += 1
        return bytes(sodium.crypto_box_seal(content, recipient.dh_public()))
