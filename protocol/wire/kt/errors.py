"""Key transparency errors, placed in the protocol's tree (PROTOCOL.md sections 14, 19).

A proof, note or checkpoint comes from the relay (or a witness), so every failure to
verify or parse one is the other side's fault: `RemoteProtocolError`. Asking this side
for a proof it cannot make (an index past the tree) stays `LocalProtocolError`.
"""

from protocol.wire.errors import BadSignature, DecodeError, RemoteProtocolError


class ProofError(RemoteProtocolError):
    """A Merkle inclusion or consistency proof does not verify (section 19.1)."""


class MalformedNote(DecodeError):
    """A signed note, key string or checkpoint breaks the C2SP format (section 19.2)."""


class NoteSignatureError(BadSignature):
    """A signed note carries no valid signature from a key we trust, or a bad one."""


class VrfError(RemoteProtocolError):
    """A VRF proof or public key (protocol.wire.kt.vrf, docs/PROTOCOL.md section 19.3)
    cannot be decoded, or the proof does not verify for this key and input."""


class MalformedProof(DecodeError, ProofError):
    """A prefix-tree lookup proof breaks its byte layout (section 19.5): truncated,
    trailing bytes, an unknown kind, a depth past 256, a non-canonical bitmap. Both a
    DecodeError (bad bytes) and a ProofError, so that a caller catching ProofError
    refuses every proof that does not verify, malformed or not."""
