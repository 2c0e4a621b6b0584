"""The protocol's exceptions: one small hierarchy, so callers can catch broadly or narrowly."""


class ProtocolError(Exception):
    """Base class of every error raised by `protocol`."""


class DecodeError(ProtocolError):
    """Bytes do not follow the documented layout: wrong length, unknown version or
    type, a value out of range, or trailing bytes."""


class UnsupportedVersion(DecodeError):
    """A version byte this implementation does not speak (frames)."""


class UnknownFrameType(DecodeError):
    """A frame type byte that names no frame valid in this direction."""


class InvalidUsername(DecodeError):
    """A username breaks the rule of protocol.usernames."""


class BadSignature(ProtocolError):
    """An Ed25519 signature did not verify."""


class SessionSetupError(ProtocolError):
    """PQXDH could not complete: a bundle failed its checks, a prekey is unknown,
    or a key agreement produced an invalid result."""


class DecryptionFailed(ProtocolError):
    """A message could not be decrypted. Deliberately carries no detail about which
    check failed, so it cannot serve as an oracle. The session state is unchanged."""


class DuplicateMessage(DecryptionFailed):
    """The message was already decrypted once (or its key is gone): a replay.

    Decided from the header alone, before any key is used, so it reveals nothing
    the header does not already show."""


class TooManySkipped(DecryptionFailed):
    """The header claims more skipped messages than the limits allow."""
