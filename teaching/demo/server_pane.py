"""The demo's third pane: everything the relay receives, stores and deletes, live.

It is fed the relay's own observer events (server.events): the metadata the
relay really has. A key toggles a detail view that sets, for the selected envelope,
what the relay can read beside what it cannot, next to what the sender typed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import ClassVar

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Static

from server.events import (
    Acked,
    BundleTaken,
    CheckpointPublished,
    DirectoryLookup,
    Expired,
    FrameIn,
    LoggedIn,
    Registered,
    RelayEvent,
    Stored,
)
from teaching.names import HostileAct

MAX_ROWS = 400
EXCERPT = 12


@dataclass
class EnvelopeView:
    envelope_id: bytes
    recipient: str
    size: int
    received_at: int
    excerpt: str
    sender_connection: str | None
    typed: str | None = None
    deleted: bool = False


def _hms(stamp: float) -> str:
    return dt.datetime.fromtimestamp(stamp).strftime("%H:%M:%S")


def narrate_event(event: RelayEvent) -> str | None:
    """One plain sentence for the status line, or None for events not worth one."""
    if isinstance(event, Registered):
        return (f"{event.user.capitalize()} registered: the relay stored a username and a "
                "public identity key, nothing else, and logged the key in its key "
                "directory.")
    if isinstance(event, CheckpointPublished):
        return (f"The relay signed and published a checkpoint of its key directory: "
                f"{event.size} {'entry' if event.size == 1 else 'entries'}, root "
                f"{event.root_hex_prefix[:8]}... Every client "
                "checks each new one against the last one it saw.")
    if isinstance(event, BundleTaken):
        opk = event.one_time_prekey
        used = (f"used one-time prekey {opk}, which the relay deleted" if opk is not None
                else "found no one-time prekey left, so the last-resort keys were used")
        return (f"{event.requester.capitalize()} fetched "
                f"{event.user.capitalize()}'s key bundle and {used}.")
    if isinstance(event, Stored):
        return (f"Envelope {event.envelope_id.hex()[:8]} stored for "
                f"{event.recipient.capitalize()}: {event.size} bytes of ciphertext, waiting "
                f"for {event.recipient.capitalize()} to acknowledge.")
    if isinstance(event, Acked) and event.count:
        return (f"{event.recipient.capitalize()} acknowledged: row deleted (and overwritten "
                "on disk).")
    if isinstance(event, LoggedIn):
        return (f"{event.user.capitalize()} logged in; the relay delivered "
                f"{event.delivered} queued envelopes.")
    if isinstance(event, Expired):
        return f"{event.count} undelivered envelopes expired and were deleted."
    return None


class ServerPane(Vertical):
    """Frames in, rows stored and deleted; detail of the selected envelope."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "toggle_detail", "What the relay can read"),
        Binding("escape", "close_detail", "Close", show=False),
    ]

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.envelopes: dict[bytes, EnvelopeView] = {}
        self.row_keys: list[str] = []
        self.rows_added = 0
        """Rows ever added: names the rows without a key of their own, uniquely even
        after the oldest were dropped (MAX_ROWS)."""
        self.last_sender: str | None = None

    def compose(self) -> ComposeResult:
        table: DataTable[str | Text] = DataTable(id="relay-log", cursor_type="row",
                                                 zebra_stripes=True)
        yield table
        with Horizontal(id="relay-detail"):
            yield Static("", id="detail-can")
            yield Static("", id="detail-cannot")
            yield Static("", id="detail-typed")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("event", "what")
        self.query_one("#relay-detail").display = False

    def clear(self) -> None:
        """A new run starts with an empty pane: nothing of the last one is left."""
        self.query_one(DataTable).clear()
        self.envelopes.clear()
        self.row_keys.clear()
        self.last_sender = None
        self.query_one("#relay-detail").display = False

    # -- events

    def add_event(self, event: RelayEvent, now: float) -> None:
        """One row per event: short enough that the event, the recipient and the size
        show in full at 120x36 and 80x24 (the time and the ciphertext are in the
        detail view, D)."""
        del now  # each envelope's own time is in its detail
        key = None
        if isinstance(event, FrameIn):
            self.last_sender = event.user
            text = f"{event.frame_type} from {event.user or '(no login)'}, {event.size} B"
            label = "frame in"
        elif isinstance(event, Stored):
            view = EnvelopeView(event.envelope_id, event.recipient, event.size,
                                event.received_at, event.body[:EXCERPT].hex(),
                                self.last_sender)
            self.envelopes[event.envelope_id] = view
            key = event.envelope_id.hex()
            text = f"envelope {key[:8]} to {view.recipient}, {view.size} B"
            label = "stored"
        elif isinstance(event, Acked):
            ids = event.envelope_ids
            for eid in ids:
                if eid in self.envelopes:
                    self.envelopes[eid].deleted = True
            more = f" +{len(ids) - 1}" if len(ids) > 1 else ""
            text = f"{len(ids)} of {event.recipient}: {ids[0].hex()[:8]}{more}" if ids else \
                f"none of {event.recipient}"
            label = "deleted"
        elif isinstance(event, BundleTaken):
            opk = event.one_time_prekey
            text = (f"{event.user}'s keys to {event.requester}, prekey {opk} gone"
                    if opk is not None else
                    f"{event.user}'s keys to {event.requester}, last resort")
            label = "keys out"
        elif isinstance(event, Registered):
            text = f"{event.user}: username, identity key"
            label = "account"
        elif isinstance(event, LoggedIn):
            text = f"{event.user}, {event.delivered} queued sent"
            label = "login"
        elif isinstance(event, Expired):
            text = f"{event.count} envelope(s) deleted"
            label = "expired"
        elif isinstance(event, CheckpointPublished):
            text = f"SIGNED {event.size} entries, root {event.root_hex_prefix[:8]}"
            label = "checkpoint"
        else:
            assert isinstance(event, DirectoryLookup)
            text = f"{event.user}'s key proof for {event.requester}"
            label = "kt lookup"
        self._add_row(label, text, key)

    def add_act(self, act: HostileAct) -> None:
        """What the hostile relay did, marked: in capitals, and in the warning colour."""
        self._add_row(Text(act.kind, style="bold reverse"), act.what, None)

    def _add_row(self, label: str | Text, text: str, key: str | None) -> None:
        table: DataTable[str | Text] = self.query_one(DataTable)
        self.rows_added += 1
        row_key = key or f"r{self.rows_added}"
        self.row_keys.append(row_key)
        table.add_row(label, text, key=row_key)
        if len(self.row_keys) > MAX_ROWS:
            table.remove_row(self.row_keys.pop(0))
        table.move_cursor(row=table.row_count - 1)

    def note_typed(self, recipient: str, text: str) -> None:
        """Attributes what a sender typed to the newest envelope stored for `recipient`
        (the demo knows it; the relay never does)."""
        for view in reversed(self.envelopes.values()):
            if view.recipient == recipient:
                if view.typed is None:
                    view.typed = text
                return

    # -- the detail view

    def selected(self) -> EnvelopeView | None:
        table: DataTable[str | Text] = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        if key is None:
            return None
        try:
            return self.envelopes.get(bytes.fromhex(key))
        except ValueError:
            return None

    def action_close_detail(self) -> None:
        self.query_one("#relay-detail").display = False

    def action_toggle_detail(self) -> None:
        detail = self.query_one("#relay-detail")
        if detail.display:
            detail.display = False
            return
        view = self.selected()
        if view is None or view.typed is None:  # default to the newest typed message
            view = next((v for v in reversed(self.envelopes.values()) if v.typed), view)
        if view is None:
            self.notify("No envelope yet: send a message first.")
            return
        self._show(view)
        detail.display = True

    def _show(self, view: EnvelopeView) -> None:
        can, cannot, typed = self.render_detail(view)
        self.query_one("#detail-can", Static).update(can)
        self.query_one("#detail-cannot", Static).update(cannot)
        self.query_one("#detail-typed", Static).update(typed)

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        view = self.selected()
        if self.query_one("#relay-detail").display and view is not None:
            self._show(view)

    @staticmethod
    def render_detail(view: EnvelopeView) -> tuple[str, str, str]:
        """Three columns, side by side: what the relay can read, what it cannot, and
        what the sender typed."""
        when = dt.datetime.fromtimestamp(view.received_at).strftime("%H:%M:%S")
        can = [
            f"to: {view.recipient}",
            f"size: {view.size} B (a size class: tells only whether the message is long)",
            f"time: {when}",
            f"id: {view.envelope_id.hex()[:8]}...",
            f"via {view.sender_connection}'s connection (not stored)"
            if view.sender_connection else "via: unknown connection",
            f"bytes: {view.excerpt[:12]}...",
            "acknowledged, deleted" if view.deleted else "queued",
            "timing and order: a bundle fetch just before hints at a first message, "
            "a send right after a delivery at a receipt",
        ]
        cannot = [
            "the sender's name (sealed inside; only the connection shows the account)",
            "first message or not, from the size (all short messages are 2048 B)",
            "ratchet key and counters",
            "text or receipt, from the size",
            "the text",
        ]
        typed = escape(view.typed) if view.typed is not None else \
            "(a receipt or notice, sent automatically)"
        return ("[b]The relay CAN read[/b]\n" + "\n".join(can),
                "[b]It CANNOT read[/b]\n" + "\n".join(cannot),
                f"[b]What was typed[/b] (only the two clients know): {typed}")
