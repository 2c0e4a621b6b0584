"""End-to-end failures: what can go wrong setting up a session or opening a message.

All but one are `RemoteProtocolError`s (protocol.wire.errors): a peer, or a relay in
between, sent something that does not set up or decrypt. None carries detail an
attacker could use as an oracle. `MessageTooLarge` is this side's: a message too long
for any envelope class, or for the relay's limit.
"""

from protocol.wire.errors import LocalProtocolError, RemoteProtocolError


class MessageTooLarge(LocalProtocolError):
    """A message does not fit the largest envelope size class, or the relay's announced
    `max_envelope` (docs/PROTOCOL.md section 10.1). Raised before anything is sealed."""


class SessionSetupError(RemoteProtocolError):
    """PQXDH could not complete: a bundle failed its checks, a prekey is unknown,
    or a key agreement produced an invalid result."""


class DecryptionFailed(RemoteProtocolError):
    """A message could not be decrypted. Deliberately carries no detail about which
    check failed, so it cannot serve as an oracle. The session state is unchanged."""


class DuplicateMessage(DecryptionFailed):
    """The message was already decrypted once (or its key is gone): a replay.

    Decided from the header alone, before any key is used, so it reveals nothing
    the header does not already show."""


class TooManySkipped(DecryptionFailed):
    """The header claims more skipped messages than the limits allow."""
