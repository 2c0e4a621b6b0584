"""The protocol's exceptions: one hierarchy for `protocol.wire` and `protocol.e2e`.

Following h11, errors say whose fault they are:

- `LocalProtocolError`: the caller misused an API (sent a frame the state does not
  allow, encrypted before it could). A bug on this side; never caused by a peer.
- `RemoteProtocolError`: bytes from the other side break the protocol. Every
  parsing, signature and decryption failure is one, so a shell can catch it and
  answer with a refusal instead of crashing.

`protocol.e2e.errors` adds the end-to-end failures (session setup, decryption) under
`RemoteProtocolError`. The class names are part of the test-vector format
(docs/PROTOCOL.md section 17.2), so they never change.
"""


class ProtocolError(Exception):
    """Base class of every error raised by `protocol`."""


class LocalProtocolError(ProtocolError):
    """The caller asked for something the protocol does not allow in this state."""


class RemoteProtocolError(ProtocolError):
    """What the other side sent breaks the protocol."""


class DecodeError(RemoteProtocolError):
    """Bytes do not follow the documented layout: wrong length, unknown version or
    type, a value out of range, or trailing bytes."""


class UnsupportedVersion(DecodeError):
    """A version byte this implementation does not speak (frames)."""


class UnknownFrameType(DecodeError):
    """A frame type byte that names no frame valid in this direction."""


class InvalidUsername(DecodeError):
    """A username breaks the rule of protocol.wire.usernames."""


class BadSignature(RemoteProtocolError):
    """An Ed25519 signature did not verify."""


class CertificateExpired(RemoteProtocolError):
    """A sender certificate whose expiry has passed (PROTOCOL.md 20): `now >= expires`."""
