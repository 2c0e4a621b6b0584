"""The relay's sender-certificate key at rest (docs/PROTOCOL.md 20.3, docs/DATA.md).

`cert.key` in the data directory holds a 32-byte Ed25519 seed, mode 0600, created at
first start like the key directory's keys (server/kt.py). It is never logged or sent:
CERT_KEY answers with its public key and `blindrelay audit` prints that. Certificates
themselves are made by protocol/wire/certificates.py and kept nowhere.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from protocol.wire.certificates import CERT_SEED_LEN
from server.kt import _read_secret, _write_secret
from server.startup import RelayStartError

log = logging.getLogger("blindrelay.server")

CERT_KEY_FILENAME = "cert.key"
"""The sender-certificate signing key: a 32-byte Ed25519 seed."""


def load_cert_key(data_dir: Path) -> bytes:
    """The certificate key's seed, created on first start."""
    path = data_dir / CERT_KEY_FILENAME
    if not path.exists():
        seed = os.urandom(CERT_SEED_LEN)
        _write_secret(path, seed)
        log.info("created the sender-certificate key")
        return seed
    seed = _read_secret(path)
    if len(seed) != CERT_SEED_LEN:
        raise RelayStartError(f"{path} does not hold a certificate key (a 32-byte seed)")
    return seed
