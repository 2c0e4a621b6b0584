"""A deliberately broken copy of the reference client, for the client conformance
kit's test matrix (tests/conformance/test_client_kit.py): run as

    python -m tests.conformance.flawed.client FLAW ARGS...

it switches off one of the client's defences (monkeypatching one function) and then
runs `blindrelay ARGS...` unchanged. Each flaw is a mistake a real client could
make; the kit must catch every one of them."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


def _raw_escapes() -> None:
    """Prints what peers and relays wrote without making controls visible."""
    import client.commands

    def raw(text: str, *args: str) -> str:
        return text

    client.commands.one_line = raw  # type: ignore[attr-defined]
    client.commands.continuation_lines = raw  # type: ignore[attr-defined,assignment]


def _ignores_key_change() -> None:
    """Keeps sending to a contact whose identity key changed."""
    from client.records import Contact

    Contact.key_changed = property(lambda self: False)  # type: ignore[method-assign,assignment]


def _shows_replays() -> None:
    """Forgets that an initial message already set a session up, so a replayed one
    sets one up again (and its text is shown again)."""
    from protocol.e2e.session_record import SessionRecord

    original = SessionRecord._open_initial

    def _open_initial(self: SessionRecord, msg: Any, *args: Any) -> Any:
        self.replays = [e for e in self.replays if e.base_key != msg.ephemeral]
        return original(self, msg, *args)

    SessionRecord._open_initial = _open_initial  # type: ignore[method-assign,assignment]


def _no_bundle_signatures() -> None:
    """Uses a bundle's prekeys without checking their signatures."""
    from protocol.wire.prekeys import PreKeyBundle

    PreKeyBundle.verify = lambda self: None  # type: ignore[method-assign]


def _skips_directory() -> None:
    """Trusts the key the relay serves without asking the key directory."""
    from client.directory import KeyDirectory

    async def confirm(self: Any, *args: Any, **kwargs: Any) -> None:
        return None

    KeyDirectory.confirm = confirm  # type: ignore[method-assign,assignment]


def _accepts_forged_senders() -> None:
    """Believes the sender certificate inside a sealed envelope without checking that
    its key made the message (or asking the key directory about it)."""
    from client.inbox import Inbox
    from client.trust import TrustBook

    def check_sender(self: Any, *args: Any) -> None:
        return None

    async def is_impostor(self: Any, *args: Any) -> None:
        return None

    Inbox._check_sender = check_sender  # type: ignore[method-assign,assignment]
    TrustBook.is_impostor = is_impostor  # type: ignore[method-assign,assignment]


def _skips_certificate_check() -> None:
    """Reads the sender certificate's name without checking its signature or expiry."""
    from client.certificates import SenderCertificates
    from protocol.wire.certificates import decode

    def check(self: Any, certificate: bytes, received_at: int) -> Any:
        return decode(certificate)[0]

    SenderCertificates.check = check  # type: ignore[method-assign]


def _no_skip_limit() -> None:
    """Derives as many skipped message keys as a header asks for."""
    import protocol.e2e.ratchet

    protocol.e2e.ratchet.MAX_SKIP = 10**6


def _no_frame_limit() -> None:
    """Reads frames of any size from the relay."""
    import client.connection

    client.connection.frame_bound = lambda limits: 1 << 30


def _sends_unsealed() -> None:
    """Sends every envelope on its logged-in connection, whatever it was given."""
    from client.client import Client

    Client.sealed_sending = property(lambda self: False)  # type: ignore[assignment,method-assign]


FLAWS: dict[str, Callable[[], None]] = {
    "raw-escapes": _raw_escapes,
    "ignores-key-change": _ignores_key_change,
    "shows-replays": _shows_replays,
    "no-bundle-signatures": _no_bundle_signatures,
    "skips-directory": _skips_directory,
    "accepts-forged-senders": _accepts_forged_senders,
    "skips-certificate-check": _skips_certificate_check,
    "no-skip-limit": _no_skip_limit,
    "no-frame-limit": _no_frame_limit,
    "sends-unsealed": _sends_unsealed,
}


def main() -> int:
    flaw, *args = sys.argv[1:]
    FLAWS[flaw]()
    from blindrelay.cli import main as cli

    return cli(args)


if __name__ == "__main__":
    sys.exit(main())
