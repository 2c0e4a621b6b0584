"""The Double Ratchet (Signal's specification, revision 1, sections 3 and 5.2).

`Ratchet` is the state of section 3.2. `decrypt` works on local variables and
assigns them to the state only after the message authenticated, so any failure
(a forged MAC, a malformed header, a replay, a skip beyond the limits) leaves the
state exactly as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from protocol.e2e import aead
from protocol.e2e.errors import (
    DecryptionFailed,
    DuplicateMessage,
    SessionSetupError,
    TooManySkipped,
)
from protocol.e2e.kdf import kdf_ck, kdf_rk
from protocol.e2e.keys import Rng, X25519KeyPair, default_rng
from protocol.e2e.messages import HEADER_LEN, encode_header, parse_header
from protocol.wire import codec
from protocol.wire.errors import DecodeError, LocalProtocolError

MAX_SKIP = 1000
"""Most message keys one header may make us skip in one chain (DR section 3.5)."""

MAX_SKIPPED_KEYS = 2000
"""Most skipped message keys kept in total; the oldest are evicted first."""

MAX_RETIRED = 32
"""How many earlier peer ratchet keys are remembered to recognise replays."""

STATE_VERSION = 1

Accept = Callable[[bytes], bytes]


def _accepted(plaintext: bytes, accept: Accept | None) -> bytes:
    return plaintext if accept is None else accept(plaintext)


class Ratchet:
    """Double Ratchet state: DHs, DHr, RK, CKs, CKr, Ns, Nr, PN, MKSKIPPED, and AD."""

    __slots__ = ("ad", "ckr", "cks", "dhr", "dhs", "nr", "ns", "pn", "retired", "rk", "rng",
                 "skipped")

    def __init__(
        self,
        *,
        dhs: X25519KeyPair,
        dhr: bytes | None,
        rk: bytes,
        cks: bytes | None,
        ckr: bytes | None,
        ad: bytes,
        ns: int = 0,
        nr: int = 0,
        pn: int = 0,
        skipped: dict[tuple[bytes, int], bytes] | None = None,
        retired: list[bytes] | None = None,
        rng: Rng = default_rng,
    ) -> None:
        self.dhs = dhs
        self.dhr = dhr
        self.rk = rk
        self.cks = cks
        self.ckr = ckr
        self.ad = ad
        self.ns = ns
        self.nr = nr
        self.pn = pn
        self.skipped: dict[tuple[bytes, int], bytes] = {} if skipped is None else skipped
        self.retired: list[bytes] = [] if retired is None else retired
        self.rng = rng

    # -- initialisation (DR section 3.3, with PQXDH's SK and AD; PQXDH section 4)

    @classmethod
    def initiator(
        cls, sk: bytes, ad: bytes, peer_signed_prekey: bytes, rng: Rng = default_rng
    ) -> Ratchet:
        """RatchetInitAlice: DHr is Bob's signed prekey."""
        dhs = X25519KeyPair.generate(rng)
        rk, cks = kdf_rk(sk, dhs.dh(peer_signed_prekey))
        return cls(dhs=dhs, dhr=peer_signed_prekey, rk=rk, cks=cks, ckr=None, ad=ad, rng=rng)

    @classmethod
    def responder(
        cls, sk: bytes, ad: bytes, signed_prekey: X25519KeyPair, rng: Rng = default_rng
    ) -> Ratchet:
        """RatchetInitBob: his signed prekey pair is his first ratchet key pair."""
        return cls(dhs=signed_prekey, dhr=None, rk=sk, cks=None, ckr=None, ad=ad, rng=rng)

    # -- RatchetEncrypt (DR section 3.4)

    def encrypt(self, plaintext: bytes) -> bytes:
        """Returns an encoded RatchetMessage."""
        if self.cks is None:
            raise LocalProtocolError("cannot send before the peer's first message has arrived")
        if self.ns >= 0xFFFFFFFF:
            raise LocalProtocolError("sending chain exhausted")
        self.cks, mk = kdf_ck(self.cks)
        header = encode_header(self.dhs.public, self.pn, self.ns)
        self.ns += 1
        return header + aead.encrypt(mk, plaintext, self.ad + header)

    # -- RatchetDecrypt (DR sections 3.5 and 3.6)

    def decrypt(self, data: bytes, accept: Accept | None = None) -> bytes:
        """Decrypts an encoded RatchetMessage. Raises DecodeError or DecryptionFailed
        (DuplicateMessage, TooManySkipped) and then changes nothing.

        `accept`, if given, sees the authentic plaintext before anything is committed
        and returns what decrypt returns; if it raises, the state is still unchanged
        (the session layer unpads this way)."""
        dh, pn, n = parse_header(data)
        body = data[HEADER_LEN:]
        ad = self.ad + data[:HEADER_LEN]
        key = (dh, n)

        mk = self.skipped.get(key)
        if mk is not None:
            plaintext = _accepted(aead.decrypt(mk, body, ad), accept)
            del self.skipped[key]
            return plaintext

        if dh == self.dhr:
            ckr = self.ckr
            if n < self.nr:
                raise DuplicateMessage("message already received")
            if ckr is None:  # cannot happen for a state we built; guards restored ones
                raise DecryptionFailed("no receiving chain")
            new_skipped: list[tuple[tuple[bytes, int], bytes]] = []
            if n > self.nr:
                new_skipped, ckr = _skip(ckr, dh, self.nr, n)
            ckr, mk = kdf_ck(ckr)
            plaintext = _accepted(aead.decrypt(mk, body, ad), accept)
            if new_skipped:
                self._store_skipped(new_skipped)
            self.ckr = ckr
            self.nr = n + 1
            return plaintext

        if dh in self.retired:
            raise DuplicateMessage("message from an earlier chain already received")
        if n > MAX_SKIP:
            raise TooManySkipped(f"header skips {n} messages (limit {MAX_SKIP})")

        # A new ratchet public key from the peer: skip the rest of the current
        # receiving chain, then the DH ratchet step (section 3.5, DHRatchet). The
        # receiving half is done first so the message authenticates before the new
        # sending key pair is drawn.
        old_skipped: list[tuple[tuple[bytes, int], bytes]] = []
        if self.ckr is not None and self.dhr is not None:
            old_skipped, _ = _skip(self.ckr, self.dhr, self.nr, pn)
        try:
            rk, ckr = kdf_rk(self.rk, self.dhs.dh(dh))
        except SessionSetupError as exc:  # a low-order ratchet key
            raise DecryptionFailed("failed authentication") from exc
        new_skipped, ckr = _skip(ckr, dh, 0, n)
        ckr, mk = kdf_ck(ckr)
        plaintext = _accepted(aead.decrypt(mk, body, ad), accept)

        dhs = X25519KeyPair.generate(self.rng)
        rk, cks = kdf_rk(rk, dhs.dh(dh))
        self._store_skipped(old_skipped)
        self._store_skipped(new_skipped)
        if self.dhr is not None:
            self.retired.append(self.dhr)
            del self.retired[:-MAX_RETIRED]
        self.pn = self.ns
        self.ns = 0
        self.nr = n + 1
        self.dhr = dh
        self.dhs = dhs
        self.rk = rk
        self.cks = cks
        self.ckr = ckr
        return plaintext

    @property
    def missing(self) -> int:
        """How many messages were skipped and have not arrived yet (stored keys)."""
        return len(self.skipped)

    def _store_skipped(self, entries: list[tuple[tuple[bytes, int], bytes]]) -> None:
        if not entries:
            return
        self.skipped.update(entries)
        excess = len(self.skipped) - MAX_SKIPPED_KEYS
        if excess > 0:
            for old in list(self._oldest(excess)):
                del self.skipped[old]

    def _oldest(self, count: int) -> Iterator[tuple[bytes, int]]:
        it = iter(self.skipped)
        for _ in range(count):
            yield next(it)

    # -- persistence

    def serialize(self) -> bytes:
        """Versioned bytes holding the whole state, private keys included: store them
        only encrypted (the client's store does)."""
        parts = [
            codec.u8(STATE_VERSION),
            self.dhs.private,
            _optional(self.dhr),
            self.rk,
            _optional(self.cks),
            _optional(self.ckr),
            codec.u32(self.ns),
            codec.u32(self.nr),
            codec.u32(self.pn),
            codec.var16(self.ad),
            codec.u32(len(self.skipped)),
        ]
        for (dh, n), mk in self.skipped.items():
            parts += (dh, codec.u32(n), mk)
        parts.append(codec.u8(len(self.retired)))
        parts += self.retired
        return b"".join(parts)

    @classmethod
    def deserialize(cls, data: bytes, rng: Rng = default_rng) -> Ratchet:
        r = codec.Reader(data)
        r.expect(STATE_VERSION, "ratchet state version")
        dhs = X25519KeyPair.from_private(r.take(32))
        dhr = _read_optional(r)
        rk = r.take(32)
        cks = _read_optional(r)
        ckr = _read_optional(r)
        ns, nr, pn = r.u32(), r.u32(), r.u32()
        ad = r.var16()
        count = r.u32()
        if count > MAX_SKIPPED_KEYS:
            raise DecodeError("too many skipped keys in saved state")
        skipped = {}
        for _ in range(count):
            dh = r.take(32)
            n = r.u32()
            if (dh, n) in skipped:
                raise DecodeError("duplicate skipped key in saved state")
            skipped[(dh, n)] = r.take(32)
        retired_count = r.u8()
        if retired_count > MAX_RETIRED:
            raise DecodeError("too many retired keys in saved state")
        retired = [r.take(32) for _ in range(retired_count)]
        r.finish()
        return cls(dhs=dhs, dhr=dhr, rk=rk, cks=cks, ckr=ckr, ad=ad, ns=ns, nr=nr, pn=pn,
                   skipped=skipped, retired=retired, rng=rng)


def _skip(
    ck: bytes, dh: bytes, nr: int, until: int
) -> tuple[list[tuple[tuple[bytes, int], bytes]], bytes]:
    """SkipMessageKeys without side effects: the keys for (dh, nr..until-1) and the
    chain key after them."""
    if until - nr > MAX_SKIP:
        raise TooManySkipped(f"header skips {until - nr} messages (limit {MAX_SKIP})")
    out = []
    while nr < until:
        ck, mk = kdf_ck(ck)
        out.append(((dh, nr), mk))
        nr += 1
    return out, ck


def _optional(value: bytes | None) -> bytes:
    return b"\x00" if value is None else b"\x01" + value


def _read_optional(r: codec.Reader) -> bytes | None:
    return r.take(32) if r.flag() else None
