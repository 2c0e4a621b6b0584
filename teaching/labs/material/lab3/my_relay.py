"""Lab 3: be the hostile relay. THIS is the file you edit.

`blindrelay lab check 3` runs a real relay built from `MyRelay` between two real
clients, Alice and Bob, who exchange four messages, then reports what your relay read
and which of the clients' checks noticed. Today `MyRelay` is an honest relay.

Your goal: read what Alice and Bob say. Put every plaintext your relay manages to
decrypt into `self.read`: that is how the check knows what you read.

The honest relay's hooks you may override (server/relay.py):
- `_fetch_bundle(username, requester) -> Bundle`: the key bundle a client gets when
  it starts a conversation (the identity key in it is whose key the client will use);
- `_lookup_identity(username, requester) -> bytes`: the identity key the relay
  claims for a name (our clients no longer ask: the sender certificate inside each
  sealed envelope says who sent it; your relay holds the key that signs them,
  `self._cert_sign`, so `protocol.wire.certificates.issue` makes any certificate you
  like: docs/PROTOCOL.md 20);
- `store_and_push(items)`: every (recipient, sealed envelope) a client sends;
- `_carry_out(conn, frame)`: every request, including the key directory's.

teaching/hostile.py (the demo's hostile relay) shows how each trick is done, with the
cryptography a relay needs to play the man in the middle. Read README.md.
"""

from __future__ import annotations

from typing import Any

from server.relay import Relay
from server.storage import StoredEnvelope


class MyRelay(Relay):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read: list[bytes] = []
        """Every plaintext your relay decrypted."""

    async def store_and_push(self, items: list[tuple[str, bytes]]) -> list[StoredEnvelope]:
        # TODO: the envelopes are sealed to the recipient's identity key. Can you make
        # them sealed to a key of yours instead?
        return await super().store_and_push(items)
