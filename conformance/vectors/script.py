"""The scripted conversation conversation.json records, run once and shared by the
files cut from it (state, messages, sealed)."""

from __future__ import annotations

from conformance.drbg import Drbg
from conformance.vectors import FORMAT, Json
from conformance.vectors.common import LABEL, BobKeys, fixed_encapsulation, flip, h, identity_json
from conformance.vectors.recorded import Recorded
from conformance.vectors.views import session_view
from protocol.e2e import kdf, padding, pqxdh
from protocol.e2e.keys import IdentityKeyPair, X25519KeyPair
from protocol.e2e.messages import HEADER_LEN, Header, PreKeyMessage
from protocol.e2e.ratchet import MAX_SKIP
from protocol.e2e.sealed import MessageKind
from protocol.e2e.session import Session
from protocol.wire.errors import ProtocolError


class Conversation:
    """Runs the scripted conversation and records every event."""

    def __init__(self, rec: Recorded, bob: BobKeys, alice: IdentityKeyPair) -> None:
        self.bob_keys = bob
        self.identities = {"alice": alice, "bob": bob.identity}
        self.labels = {"alice": f"{LABEL}conversation/alice", "bob": f"{LABEL}conversation/bob"}
        self.rngs = {name: Drbg(label) for name, label in self.labels.items()}
        self.bundle = bob.bundle(True, True)
        self.kem_ct, self.kem_ss = rec.kem(bob.kem_ot, rec.lookup("conversation", "setup"))
        encapsulate = fixed_encapsulation(self.kem_ct, self.kem_ss, self.bundle.kem_prekey.public)
        alice_session = Session.initiate(alice, self.bundle, self.rngs["alice"], encapsulate)
        self.sessions: dict[str, Session | None] = {"alice": alice_session, "bob": None}
        self.messages: dict[str, tuple[MessageKind, bytes]] = {}
        self.events: list[Json] = []
        self.delivered: list[str] = []
        self.agreement = pqxdh.initiate(alice, self.bundle, Drbg(self.labels["alice"]),
                                        encapsulate).agreement
        ephemeral = X25519KeyPair.generate(Drbg(self.labels["alice"]))
        self.alice_initial_state = alice_session.serialize()
        self.setup: Json = {
            "kem_ciphertext": h(self.kem_ct),
            "kem_shared_secret": h(self.kem_ss),
            "ephemeral_private": h(ephemeral.private),
            "ephemeral_public": h(ephemeral.public),
            "dh": [h(d) for d in self.agreement.dh],
            "sk": h(self.agreement.sk),
            "ad": h(self.agreement.ad),
            "prekey_prefix": h(alice_session.pending_prefix or b""),
            "alice_session": session_view(alice_session),
            "alice_state": h(self.alice_initial_state),
        }

    def session(self, name: str) -> Session:
        s = self.sessions[name]
        assert s is not None
        return s

    def send(self, sender: str, mid: str, plaintext: bytes) -> None:
        s = self.session(sender)
        r = s.ratchet
        assert r.cks is not None
        chain_key = r.cks
        next_chain_key, mk = kdf.kdf_ck(chain_key)
        enc_key, auth_key, iv = kdf.message_keys(mk)
        prefix = s.pending_prefix or b""
        kind, wire = s.encrypt(plaintext)
        ratchet_message = wire[len(prefix):]
        header = Header.decode(ratchet_message[:HEADER_LEN])
        body = ratchet_message[HEADER_LEN:]
        assert r.cks == next_chain_key
        self.messages[mid] = (kind, wire)
        self.events.append({
            "op": "send",
            "from": sender,
            "id": mid,
            "plaintext": h(plaintext),
            "padded": h(padding.pad(plaintext)),
            "kind": int(kind),
            "header": {"dh": h(header.dh), "pn": header.pn, "n": header.n,
                       "encoded": h(ratchet_message[:HEADER_LEN])},
            "chain_key": h(chain_key),
            "message_key": h(mk),
            "next_chain_key": h(next_chain_key),
            "enc_key": h(enc_key),
            "auth_key": h(auth_key),
            "iv": h(iv),
            "ciphertext": h(body[:-32]),
            "mac": h(body[-32:]),
            "ratchet_message": h(ratchet_message),
            "wire": h(wire),
            "session": session_view(s),
            "state": h(s.serialize()),
        })

    def deliver(self, receiver: str, mid: str, expect: str = "ok",
                mutation: tuple[str, bytes] | None = None) -> None:
        kind, wire = self.messages[mid]
        if mutation is not None:
            wire = mutation[1]
        s = self.sessions[receiver]
        before = s.serialize() if s is not None else None
        old_dhs = s.ratchet.dhs.public if s is not None else None
        event: Json = {"op": "deliver", "to": receiver, "id": mid}
        if mutation is not None:
            event["mutation"] = {"description": mutation[0], "wire": h(wire)}
        try:
            if s is None:
                assert kind is MessageKind.PREKEY
                keys = self.bob_keys
                s, plaintext, consumed = Session.respond(
                    self.identities[receiver], wire, keys.lookup, self.rngs[receiver])
                self.sessions[receiver] = s
                msg = PreKeyMessage.decode(wire)
                agreement = pqxdh.respond(keys.identity, msg, keys.spk, keys.kem_ot, keys.opk)
                assert agreement == self.agreement
                event["responds"] = {
                    "sk": h(agreement.sk),
                    "ad": h(agreement.ad),
                    "consumed": {"one_time_prekey_id": consumed.one_time_prekey_id,
                                 "kem_prekey_id": consumed.kem_prekey_id},
                }
            else:
                plaintext = s.decrypt(kind, wire)
            result = "ok"
        except ProtocolError as exc:
            result = type(exc).__name__
            assert s is not None and s.serialize() == before, "a failure changed the state"
        assert result == expect, (mid, result, expect)
        assert s is not None
        event["result"] = result
        if result == "ok":
            event["plaintext"] = h(plaintext)
            self.delivered.append(mid)
        event["dh_ratchet_step"] = s.ratchet.dhs.public != old_dhs
        event["session"] = session_view(s)
        event["state"] = h(s.serialize())
        self.events.append(event)

    def run(self) -> None:
        text = "Hello Bob! This is Alice, writing before you were even online."
        long = ("A message longer than one padding bucket: " + "0123456789" * 16).encode()
        self.send("alice", "A0", text.encode())
        self.send("alice", "A1", b"")
        self.send("alice", "A2", long)
        self.deliver("bob", "A1")                        # sets Bob's session up; A0 skipped
        self.deliver("bob", "A0")                        # an initial message, from MKSKIPPED
        self.deliver("bob", "A2")
        self.deliver("bob", "A2", "DuplicateMessage")    # replay in the current chain
        self.send("bob", "B0", b"Hi Alice, got your three messages.")
        self.send("bob", "B1", b"\x00\x80 binary body ending in 0x80 then 0x00\x80\x00")
        self.send("bob", "B2", b"B2")
        self.deliver("alice", "B0")                      # Alice's first DH step; no more prefix
        self.send("alice", "A3", b"A3: now plain ratchet messages")
        self.send("alice", "A4", "A4: caf\u00e9 \u2615".encode())
        self.deliver("alice", "B2")                      # B1 skipped
        self.deliver("bob", "A4")                        # Bob's DH step; A3 skipped
        self.send("bob", "B3", b"B3: a new chain")
        self.deliver("alice", "B3")                      # Alice's DH step
        _, b1 = self.messages["B1"]
        self.deliver("alice", "B1", "DecryptionFailed",
                     ("B1 with the last bit of its MAC flipped", flip(b1, len(b1) - 1)))
        self.deliver("alice", "B1")                      # from MKSKIPPED, old chain
        self.deliver("bob", "A3")                        # from MKSKIPPED, old chain
        self.send("alice", "A5", b"A5")
        self.send("alice", "A6", b"A6")
        self.send("alice", "A7", b"A7 arrives first")
        self.deliver("bob", "A7")                        # Bob's DH step; A5, A6 skipped
        self.deliver("bob", "A5")
        _, a7 = self.messages["A7"]
        bob_ratchet = self.session("bob").ratchet
        header = Header.decode(a7[:HEADER_LEN])
        for skip, expect in ((MAX_SKIP + 1, "TooManySkipped"), (MAX_SKIP, "DecryptionFailed")):
            forged = Header(header.dh, header.pn, bob_ratchet.nr + skip).encode() + a7[HEADER_LEN:]
            self.deliver("bob", "A7", expect,
                         (f"A7 with N = Nr + {skip} (the MAC no longer matches)", forged))
        self.deliver("bob", "A6")
        self.send("bob", "B4", b"B4")
        self.send("bob", "B5", b"B5 overtakes B4")
        self.send("alice", "A8", b"A8 is lost and never delivered")
        self.deliver("alice", "B5")                      # Alice's DH step; B4 skipped
        self.deliver("alice", "B4")
        self.send("alice", "A9", b"A9 after a lost message")
        self.deliver("bob", "A9")                        # Bob's DH step; A8's key stays stored
        self.send("bob", "B6", b"Bye!")
        self.deliver("alice", "B6")                      # Alice's DH step
        self.deliver("bob", "A0", "DuplicateMessage")    # replay from a retired chain
        self.deliver("alice", "B0", "DuplicateMessage")  # replay from a retired chain
        self.deliver("bob", "A5", "DuplicateMessage")    # key used, chain retired

    def json(self, alice: IdentityKeyPair) -> Json:
        bob = self.bob_keys
        return {
            "description": "A conversation of 17 messages over 8 DH ratchet steps with "
            "out-of-order, skipped, lost, replayed and forged messages.",
            "format": FORMAT,
            "rng": self.labels,
            "alice": identity_json(alice),
            "bob": bob.private_json(self.bundle),
            "bundle": h(self.bundle.encode()),
            "setup": self.setup,
            "delivery_order": self.delivered,
            "events": self.events,
        }
