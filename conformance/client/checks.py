"""The client checks: each starts its own relay (conformance/client/relay.py) and a
fresh client profile, plays peers against the client, and fails on the first thing
the client shows, sends or acknowledges that it must not. Every check is one line
in docs/CONFORMANCE.md ("Client checks")."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from conformance.client.driver import CheckFailed, Driver, Outcome
from conformance.client.peer import Peer
from conformance.client.relay import KitRelay
from protocol.e2e.ratchet import MAX_SKIP
from protocol.wire.certificates import issue
from protocol.wire.errors import ProtocolError
from protocol.wire.frames import Deliver, encode_frame
from protocol.wire.prekeys import KemPreKey, SignedPreKey

CLIENT_NAME = "alice"


class Kit:
    """What one check works with: its relay, the client under test, and peers."""

    def __init__(self, relay: KitRelay, client: Driver) -> None:
        self.relay = relay
        self.client = client

    async def init(self) -> None:
        out = await self.client.run("init", CLIENT_NAME, "--server", self.relay.url)
        if out.code != 0:
            raise CheckFailed(f"'init' exited {out.code}: {out.tail()}")
        account = self.relay.accounts.get(CLIENT_NAME)
        if account is None or account.signed_prekey is None:
            raise CheckFailed("'init' exited 0 but did not register and upload prekeys")

    @property
    def identity(self) -> bytes:
        """The client's identity key, as it registered it."""
        return self.relay.accounts[CLIENT_NAME].identity

    def peer(self, name: str) -> Peer:
        """A peer registered (and logged in the key directory) like any user."""
        peer = Peer(name)
        self.relay.bind(name, peer.identity.public)
        self.relay.publish(name, *peer.prekeys())
        return peer

    def start(self, peer: Peer, one_time: bool = True) -> None:
        """`peer` starts a new session with the client from its bundle at the relay."""
        peer.start(CLIENT_NAME, self.relay.take_bundle(CLIENT_NAME, one_time))

    def text(self, peer: Peer, text: str, sender: str | None = None) -> bytes:
        """`peer`'s text to the client, with the certificate the relay issues `sender`
        (default: the peer itself) for the key it has registered now."""
        return peer.text(CLIENT_NAME, self.identity, text,
                         self.relay.certificate(sender or peer.name))

    async def recv(self) -> list[dict[str, Any]]:
        out = await self.client.run("recv", "--json")
        if out.code != 0:
            raise CheckFailed(f"'recv --json' exited {out.code}: {out.tail()}")
        return out.messages()

    async def refused_send(self, to: str, what: str) -> Outcome:
        """`send` to `to` must exit non-zero and put nothing for `to` on the relay."""
        before = len(self.relay.sent)
        out = await self.client.run("send", to, f"must not be sent {secrets.token_hex(4)}")
        sent = self.relay.sent_to(to, before)
        if sent:
            raise CheckFailed(f"sent {len(sent)} envelope(s) to {to} {what}")
        if out.code == 0:
            raise CheckFailed(f"'send' exited 0 {what} (nothing reached the relay, but "
                              "the contract says 0 means sent)")
        return out


def shown(lines: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """The incoming messages whose text contains `text`."""
    return [m for m in lines if m.get("kind") == "in" and text in str(m.get("text", ""))]


def mentions(out: Outcome, token: str) -> bool:
    return token.encode() in out.stdout or token.encode() in out.stderr


def flipped(signature: bytes) -> bytes:
    return signature[:-1] + bytes([signature[-1] ^ 0x01])


def token() -> str:
    return secrets.token_hex(6)


# -- the checks


async def check_exchange(kit: Kit) -> None:
    """Baseline: sends a message a peer can read and shows the peer's reply."""
    await kit.init()
    bob = kit.peer("bob")
    word = token()
    before = len(kit.relay.sent)
    out = await kit.client.run("send", "bob", f"hello {word}")
    if out.code != 0:
        raise CheckFailed(f"'send' to an honest peer exited {out.code}: {out.tail()}")
    texts = []
    for envelope in kit.relay.sent_to("bob", before):
        try:
            texts.append(bob.open(envelope.body)[1])
        except ProtocolError as exc:
            raise CheckFailed(f"the peer cannot open what the client sent: {exc}") from exc
    if f"hello {word}" not in texts:
        raise CheckFailed("'send' exited 0 but no envelope carrying the text reached the peer")
    kit.relay.queue(CLIENT_NAME, kit.text(bob, f"reply {word}"))
    lines = await kit.recv()
    if not [m for m in shown(lines, f"reply {word}") if m.get("from") == "bob"]:
        raise CheckFailed("'recv --json' did not show the peer's reply as from bob")


async def check_bundle_signature(kit: Kit) -> None:
    """Refuses a bundle whose signed prekey or KEM prekey signature is bad."""
    await kit.init()
    bob, carol = kit.peer("bob"), kit.peer("carol")
    spk = bob.signed_prekey
    kit.relay.bundles["bob"] = replace(
        bob.bundle(), signed_prekey=SignedPreKey(spk.key_id, spk.public,
                                                 flipped(spk.signature))).encode()
    await kit.refused_send("bob", "with a bad signed-prekey signature in its bundle")
    kem = carol.last_resort
    kit.relay.bundles["carol"] = replace(
        carol.bundle(), kem_prekey=KemPreKey(kem.key_id, kem.public,
                                             flipped(kem.signature))).encode()
    await kit.refused_send("carol", "with a bad KEM-prekey signature in its bundle")


async def check_key_directory(kit: Kit) -> None:
    """Refuses a key the relay serves that its key directory does not bind to the name."""
    await kit.init()
    kit.peer("carol")
    fake = Peer("carol")  # the relay's own key, not logged in the directory
    kit.relay.bundles["carol"] = fake.bundle().encode()
    kit.relay.identities["carol"] = fake.identity.public
    await kit.refused_send("carol", "whose bundle's identity key is not the one the key "
                           "directory binds")


async def check_key_swap(kit: Kit) -> None:
    """A contact's changed identity key blocks sending until the user accepts it."""
    await kit.init()
    bob = kit.peer("bob")
    out = await kit.client.run("send", "bob", f"hello {token()}")
    if out.code != 0:
        raise CheckFailed(f"'send' to an honest peer exited {out.code}: {out.tail()}")
    for envelope in kit.relay.sent_to("bob"):
        bob.open(envelope.body)
    # The relay re-binds bob to its own key, logged in the directory as an operator's
    # RESET (so the directory alone does not stop it), and "bob" writes from it.
    swapped = Peer("bob")
    kit.start(swapped)
    kit.relay.bind("bob", swapped.identity.public)
    kit.relay.publish("bob", *swapped.prekeys())
    kit.relay.queue(CLIENT_NAME, kit.text(swapped, f"new phone {token()}"))
    await kit.recv()
    await kit.refused_send("bob", "after bob's identity key changed (not accepted by the user)")


async def check_replay(kit: Kit) -> None:
    """A re-delivered envelope (same id, new id, or after the session moved on) is not
    shown again."""
    await kit.init()
    bob = kit.peer("bob")
    word = token()
    kit.start(bob, one_time=False)  # the relay says no one-time prekeys are left
    first = kit.text(bob, f"once {word}")
    first_id = kit.relay.queue(CLIENT_NAME, first)
    lines = await kit.recv()
    if len(shown(lines, word)) != 1:
        raise CheckFailed(f"the message was shown {len(shown(lines, word))} times on "
                          "first delivery, not once")
    kit.relay.queue(CLIENT_NAME, first, first_id)  # the same envelope again
    kit.relay.queue(CLIENT_NAME, first)  # ... under a new envelope id
    later = []
    for _ in range(2):  # two newer sessions: the first is then neither current nor previous
        kit.start(bob, one_time=False)
        later.append(token())
        kit.relay.queue(CLIENT_NAME, kit.text(bob, f"later {later[-1]}"))
    kit.relay.queue(CLIENT_NAME, first)  # ... once more, after the session moved on
    lines = await kit.recv()
    if shown(lines, word):
        raise CheckFailed(f"a replayed envelope was shown again ({len(shown(lines, word))} "
                          "time(s))")
    if not all(shown(lines, w) for w in later):
        raise CheckFailed("the peer's newer messages (in new sessions) were not shown")


async def check_skipped_limit(kit: Kit) -> None:
    """Refuses a message that skips more than MAX_SKIP message keys; shows one that
    arrives out of order within the limit."""
    await kit.init()
    bob = kit.peer("bob")
    kit.start(bob)
    near, far = token(), token()
    kit.relay.queue(CLIENT_NAME, kit.text(bob, "first"))  # counter 0
    bob.skip(CLIENT_NAME, 1)  # counter 1 never sent
    near_body = kit.text(bob, f"near {near}")  # counter 2
    bob.skip(CLIENT_NAME, MAX_SKIP - 1)  # counters 3 .. MAX_SKIP + 1
    kit.relay.queue(CLIENT_NAME, kit.text(bob, f"far {far}"))  # skips MAX_SKIP + 1 keys
    kit.relay.queue(CLIENT_NAME, near_body)
    lines = await kit.recv()
    if shown(lines, far):
        raise CheckFailed(f"showed a message that skips {MAX_SKIP + 1} message keys "
                          f"(the limit is {MAX_SKIP})")
    if not shown(lines, near):
        raise CheckFailed("did not show a message that arrived out of order within the "
                          "skipped-message limit")


async def check_oversized_frame(kit: Kit) -> None:
    """Refuses a frame far over the limits the relay announced (does not acknowledge
    it), exits, and works again afterwards."""
    await kit.init()
    bob = kit.peer("bob")
    kit.start(bob)
    big, after = token(), token()
    body = kit.text(bob, f"big {big}")
    size = 4 * kit.relay.limits.max_frame
    envelope_id = secrets.token_bytes(16)
    frame = encode_frame(Deliver(envelope_id, int(time.time()), body + bytes(size)))
    kit.relay.queue_raw(CLIENT_NAME, envelope_id, frame)
    out = await kit.client.run("recv", "--json")
    if envelope_id in kit.relay.acked:
        raise CheckFailed(f"acknowledged a DELIVER frame of {len(frame)} bytes (the relay "
                          f"announced max_frame {kit.relay.limits.max_frame})")
    if mentions(out, big):
        raise CheckFailed("showed the text inside an oversized frame")
    kit.relay.drop_queue(CLIENT_NAME)  # the relay gives up on it
    kit.relay.queue(CLIENT_NAME, kit.text(bob, f"after {after}"))
    if not shown(await kit.recv(), after):
        raise CheckFailed("after refusing the oversized frame, the next message was not "
                          "shown")


async def check_forged_sender(kit: Kit) -> None:
    """Does not show a message sealed with bob's valid sender certificate that mallory
    made (the certificate's identity key is not the one the message was made with)."""
    await kit.init()
    kit.peer("bob")
    mallory = kit.peer("mallory")
    word = token()
    kit.start(mallory)
    kit.relay.queue(CLIENT_NAME, kit.text(mallory, f"forged {word}", sender="bob"))
    out = await kit.client.run("recv", "--json")
    if out.code != 0:
        raise CheckFailed(f"'recv --json' exited {out.code}: {out.tail()}")
    from_bob = [m for m in out.messages() if m.get("kind") == "in" and m.get("from") == "bob"]
    if from_bob or mentions(out, word):
        raise CheckFailed("showed a message from bob that mallory made (with bob's "
                          "certificate, whose identity key did not make the message)")


async def check_certificate(kit: Kit) -> None:
    """Does not show a message from bob whose sender certificate is signed by another
    key than the relay's (pinned at the first login), or expired before the relay
    stored the message; shows bob's message with a valid one."""
    await kit.init()
    bob = kit.peer("bob")
    kit.start(bob)
    forged, expired, genuine = token(), token(), token()
    identity = kit.relay.accounts["bob"].identity
    other_key = issue(secrets.token_bytes(32), "bob", identity, int(time.time()) + 3600)
    stale = issue(kit.relay.cert_seed, "bob", identity, int(time.time()) - 60)
    for certificate, word in ((other_key, forged), (stale, expired)):
        kit.relay.queue(CLIENT_NAME, bob.text(CLIENT_NAME, kit.identity, f"cert {word}",
                                              certificate))
    kit.relay.queue(CLIENT_NAME, kit.text(bob, f"cert {genuine}"))
    out = await kit.client.run("recv", "--json")
    if out.code != 0:
        raise CheckFailed(f"'recv --json' exited {out.code}: {out.tail()}")
    lines = out.messages()
    if mentions(out, forged):
        raise CheckFailed("showed a message whose sender certificate another key signed")
    if mentions(out, expired):
        raise CheckFailed("showed a message whose sender certificate had expired when the "
                          "relay stored it")
    if not shown(lines, genuine):
        raise CheckFailed("did not show bob's message with a valid sender certificate")


ESCAPES = ("\x1b[2J\x1b[H", "\x1b]0;owned\x07", "\x1b]52;c;b3duZWQ=\x07", "\x9b31m", "\r",
           "\x08\x08", "\x1b[6n", "\x7f", "\x85")


def raw_controls(data: bytes) -> list[str]:
    """The terminal controls in `data` other than newline and tab: C0, DEL and C1
    (as UTF-8 characters or as raw bytes)."""
    text = data.decode("utf-8", "surrogateescape")
    found = []
    for ch in text:
        code = ord(ch)
        if ch in "\n\t":
            continue
        if code < 0x20 or code == 0x7F or 0x80 <= code <= 0x9F or 0xDC80 <= code <= 0xDC9F:
            found.append(f"U+{code:04X}" if code < 0xDC00 else f"byte 0x{code - 0xDC00:02X}")
    return sorted(set(found))


async def check_escapes(kit: Kit) -> None:
    """What the client prints holds no raw ESC, C1 or other control bytes: not from a
    peer's text, not from a relay's error message."""
    await kit.init()
    bob = kit.peer("bob")
    kit.start(bob)
    word = token()
    kit.relay.queue(CLIENT_NAME, kit.text(bob, f"esc {word} {' '.join(ESCAPES)} end"))
    out = await kit.client.run("recv")
    if out.code != 0:
        raise CheckFailed(f"'recv' exited {out.code}: {out.tail()}")
    if not mentions(out, word):
        raise CheckFailed("'recv' did not show the peer's message at all")
    found = raw_controls(out.stdout + out.stderr)
    if found:
        raise CheckFailed(f"'recv' printed raw terminal controls from a peer's text: "
                          f"{', '.join(found)}")
    kit.relay.errors["ghost"] = f"no user {' '.join(ESCAPES)} here"
    out = await kit.client.run("send", "ghost", "hello")
    found = raw_controls(out.stdout + out.stderr)
    if found:
        raise CheckFailed(f"'send' printed raw terminal controls from a relay's ERROR "
                          f"message: {', '.join(found)}")


CheckFunc = Callable[[Kit], Awaitable[None]]


@dataclass(frozen=True)
class ClientCheck:
    name: str
    func: CheckFunc

    @property
    def doc(self) -> str:
        return " ".join((self.func.__doc__ or "").split())


async def check_sealed(kit: Kit) -> None:
    """Sends to a peer who gave it a delivery capability in a SEALED_SEND on a connection
    that never logged in, carrying that capability (PROTOCOL.md 16.10)."""
    await kit.init()
    bob = kit.peer("bob")
    capability = secrets.token_bytes(32)
    kit.relay.accounts["bob"].capability_hash = hashlib.sha256(capability).digest()
    kit.start(bob)
    word = token()
    kit.relay.queue(CLIENT_NAME, bob.capability(CLIENT_NAME, kit.identity, capability,
                                                kit.relay.certificate("bob")))
    kit.relay.queue(CLIENT_NAME, kit.text(bob, f"hi {word}"))
    await kit.recv()
    before = len(kit.relay.sent)
    out = await kit.client.run("send", "bob", f"sealed {word}")
    if out.code != 0:
        raise CheckFailed(f"'send' to a peer who gave a capability exited {out.code}: "
                          f"{out.tail()}")
    sent = kit.relay.sent_to("bob", before)
    try:
        texts = [bob.open(envelope.body)[1] for envelope in sent]
    except ProtocolError as exc:
        raise CheckFailed(f"the peer cannot open what the client sent: {exc}") from exc
    if f"sealed {word}" not in texts:
        raise CheckFailed("'send' exited 0 but no envelope carrying the text reached the peer")
    for envelope in sent:
        if envelope.sender:
            raise CheckFailed("an envelope went by SEND on the logged-in connection: the "
                              "relay saw who sent it")
        if envelope.capability != capability:
            raise CheckFailed("a sealed envelope did not carry the capability the peer gave")


CHECKS: tuple[ClientCheck, ...] = (
    ClientCheck("client.exchange", check_exchange),
    ClientCheck("client.bundle-signature", check_bundle_signature),
    ClientCheck("client.key-directory", check_key_directory),
    ClientCheck("client.key-swap", check_key_swap),
    ClientCheck("client.replay", check_replay),
    ClientCheck("client.skipped-limit", check_skipped_limit),
    ClientCheck("client.oversized-frame", check_oversized_frame),
    ClientCheck("client.forged-sender", check_forged_sender),
    ClientCheck("client.certificate", check_certificate),
    ClientCheck("client.escapes", check_escapes),
    ClientCheck("client.sealed", check_sealed),
)


def select(only: str | None) -> list[ClientCheck]:
    return [c for c in CHECKS if only is None or only in c.name]


async def run_check(check: ClientCheck, command: list[str], work: Path,
                    timeout: float) -> None:
    """One check on its own relay and profile; the caller removes `work`."""
    relay = KitRelay()
    await relay.start()
    try:
        await check.func(Kit(relay, Driver(command, work / "home", timeout)))
    finally:
        await relay.stop()
