"""Sender certificates, as this client uses them (docs/PROTOCOL.md 10 and 20).

- The relay's certificate key is pinned at the first login (trust on first use, like
  the key directory's keys), in the encrypted store, per server URL. A different key
  later is a loud alert and is never re-pinned silently: no new certificate is
  fetched or sent with until it is resolved, and certificates under the new key do not
  verify (their messages are filed under "unknown sender").
- Our own certificate is fetched at login and whenever less than half its lifetime is
  left (a timer while connected: `refresh_delay`), and cached in the store. It is
  NEVER fetched right before a send: a GET_CERTIFICATE followed by a sealed send
  would tie the send to the account by timing. The outbox seals with whatever is
  cached (`current`); with none valid, sealed envelopes wait in the outbox.
- What arrives is checked by `check` (client/inbox.py calls it): the certificate
  verifies under the pinned key at the time the relay stored the envelope (the
  DELIVER's received_at), and its identity key is the one the message was made with.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable

from client.connection import RelayConnection
from client.errors import Refused, relay_errors
from client.events import Events, KtAlert, KtAlertKind
from client.records import CertState
from client.store import CertRepo, Store
from protocol.wire.certificates import SenderCertificate, verify_certificate
from protocol.wire.errors import BadSignature, CertificateExpired, ProtocolError

log = logging.getLogger("blindrelay.client")

REFRESH_FRACTION = 0.5
"""A certificate is replaced once less than this fraction of its lifetime is left."""
RETRY_DELAY = 300.0
"""Seconds before a failed refresh is tried again while connected."""
CHECK_INTERVAL = 60.0
"""Seconds between looks at the certificate's age while connected."""


class CertKeyChanged(Refused):
    """The relay's certificate key is not the one pinned at the first login."""

    def __init__(self, alert: KtAlert) -> None:
        super().__init__(alert.text)
        self.alert = alert


VERIFIED_CACHE = 256
"""Most verified certificates remembered (one per contact who wrote lately)."""


class SenderCertificates:
    def __init__(self, store: Store, repo: CertRepo, events: Events,
                 server: Callable[[], str], username: Callable[[], str],
                 identity: Callable[[], bytes], clock: Callable[[], float]) -> None:
        self.store = store
        self.repo = repo
        self.events = events
        self.server = server
        self.username = username
        self.identity = identity
        self.clock = clock
        self.blocked: KtAlert | None = None
        """Set when the relay's certificate key changed: nothing is fetched or sealed."""
        self._verified: dict[tuple[bytes, bytes], SenderCertificate] = {}
        """Certificates whose signature verified, by (certificate, key): a sender's
        certificate is the same on every envelope until it is renewed, and its
        signature need not be checked again for each (its expiry still is)."""

    def _verify(self, certificate: bytes, key: bytes, now: float) -> SenderCertificate:
        """verify_certificate, remembering signatures that verified (not failures)."""
        cert = self._verified.get((certificate, key))
        if cert is None:
            cert = verify_certificate(certificate, key, now)
            if len(self._verified) >= VERIFIED_CACHE:
                self._verified.clear()
            self._verified[(certificate, key)] = cert
        elif now >= cert.expires:
            raise CertificateExpired(f"the certificate for {cert.username} expired at "
                                     f"{cert.expires} (now {int(now)})")
        return cert

    def state(self) -> CertState | None:
        return self.repo.load(self.server())

    def pinned_key(self) -> bytes | None:
        """The relay's certificate key pinned at the first login (None: not yet)."""
        state = self.state()
        return None if state is None else state.cert_key

    # -- at login, and on the timer

    async def start(self, conn: RelayConnection) -> None:
        """At each login: CERT_KEY pins the key the first time, else must match it
        (CertKeyChanged, alerted, otherwise); then the certificate is fetched if there
        is none or half its lifetime is over."""
        with relay_errors():
            key = await conn.cert_key()
        state = self.state()
        if state is None:
            state = CertState(self.server(), key)
            with self.store.transaction():
                self.repo.save(state)
            log.info("pinned the sender-certificate key of %s", state.server)
        elif not hmac.compare_digest(key, state.cert_key):
            alert = KtAlert(
                KtAlertKind.CERT_KEY_CHANGED, "",
                f"the relay's sender-certificate key is NOT the one pinned at the first "
                f"login to {state.server}. Either the relay replaced its key or someone is "
                "impersonating it: no message is sent with a certificate under the new key, "
                "and messages carrying one are filed under unknown sender (the pinned key "
                "is kept).")
            log.warning("sender-certificate key changed: %s", alert.text)
            self.blocked = alert
            self.events.emit(alert)
            raise CertKeyChanged(alert)
        self.blocked = None
        if self.due():
            await self.refresh(conn)

    def due(self) -> bool:
        """Whether the cached certificate is missing, not ours, or past half its life."""
        return self.refresh_delay() <= 0

    def refresh_delay(self) -> float:
        """Seconds until the cached certificate is due for replacement (<= 0: now)."""
        state = self.state()
        if state is None or not state.certificate:
            return 0.0
        cert = self._own(state)
        if cert is None:
            return 0.0
        lifetime = cert.expires - state.fetched_at
        return state.fetched_at + lifetime * REFRESH_FRACTION - self.clock()

    async def refresh(self, conn: RelayConnection) -> None:
        """GET_CERTIFICATE, kept only if it verifies under the pinned key and names us
        with our own identity key."""
        if self.blocked is not None:
            raise CertKeyChanged(self.blocked)
        state = self.state()
        if state is None:
            raise Refused("the relay's certificate key is not pinned yet")
        with relay_errors():
            certificate = await conn.get_certificate()
        now = self.clock()
        try:
            cert = verify_certificate(certificate, state.cert_key, now)
        except ProtocolError as exc:
            raise Refused(f"the relay issued a sender certificate that does not verify "
                          f"({exc}); it is not used") from exc
        if cert.username != self.username() or cert.identity != self.identity():
            raise Refused("the relay issued a sender certificate for another name or key; "
                          "it is not used")
        state.certificate, state.fetched_at = certificate, now
        with self.store.transaction():
            self.repo.save(state)

    def _own(self, state: CertState) -> SenderCertificate | None:
        try:
            cert = self._verify(state.certificate, state.cert_key, self.clock())
        except ProtocolError:
            return None
        if cert.username != self.username() or cert.identity != self.identity():
            return None
        return cert

    # -- sending

    def current(self) -> bytes | None:
        """The certificate to seal with now, or None (none cached, expired, or the
        relay's key changed): sealed envelopes then wait in the outbox."""
        if self.blocked is not None:
            return None
        state = self.state()
        if state is None or self._own(state) is None:
            return None
        return state.certificate

    # -- receiving

    def check(self, certificate: bytes, received_at: int) -> SenderCertificate | str:
        """The certificate if it verifies under the pinned key at `received_at` (the
        relay's time of storing the envelope, PROTOCOL.md 20.4), else why not."""
        key = self.pinned_key()
        if key is None:
            return ("rejected: its sender certificate cannot be checked (this profile has "
                    "not pinned the relay's certificate key yet)")
        try:
            return self._verify(certificate, key, received_at)
        except BadSignature:
            return ("rejected: its sender certificate is not signed by the relay's "
                    "certificate key pinned at the first login (forged, or from another "
                    "relay)")
        except CertificateExpired:
            return ("rejected: its sender certificate had already expired when the relay "
                    "stored the message")
        except ProtocolError as exc:
            return f"rejected: its sender certificate is malformed ({exc})"
