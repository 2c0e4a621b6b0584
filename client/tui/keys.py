"""Every key the app answers to, in one table: the help screen shows it and a test
checks it against the bindings the widgets and screens declare."""

from __future__ import annotations

HELP_KEYS: list[tuple[str, str, str]] = [
    # (where, keys, what)
    ("Anywhere", "F1", "this help"),
    ("Anywhere", "Ctrl+Q", "quit"),
    ("Anywhere", "Ctrl+C", "outside the composer: reminds you that Ctrl+Q quits"),
    ("Chat", "Ctrl+N", "start a conversation by username"),
    ("Chat", "Ctrl+G", "create a group (then /add, /remove, /rename, /leave, /update in it)"),
    ("Chat", "Ctrl+T", "safety number of the open conversation: compare, verify, accept a "
                       "changed key; in a group its members and code"),
    ("Chat", "Ctrl+Up / Alt+Up", "previous conversation"),
    ("Chat", "Ctrl+Down / Alt+Down", "next conversation"),
    ("Chat", "Ctrl+O", "load older messages (or scroll to the top)"),
    ("Chat", "Ctrl+L", "jump to the newest messages (or scroll to the bottom)"),
    ("Chat", "Escape", "focus the conversation list"),
    ("Chat", "Tab / Shift+Tab", "move between the list, the messages and the composer"),
    ("Conversation list", "Up / Down", "move"),
    ("Conversation list", "Enter", "open the conversation at its first unread message"),
    ("Conversation list", "letters", "start typing in the composer"),
    ("Messages", "Up / Down / PgUp / PgDn / Home / End", "scroll"),
    ("Composer", "Enter", "send"),
    ("Composer", "Ctrl+J", "new line (works in every terminal; Shift+Enter and Alt+Enter "
                           "too where the terminal reports them)"),
    ("Composer", "Ctrl+Z / Ctrl+Y", "undo / redo"),
    ("Composer", "Ctrl+X / Ctrl+C / Ctrl+V", "cut / copy / paste (pasted line breaks are kept)"),
    ("Composer", "Ctrl+A / Ctrl+E", "start / end of the line (also Home / End)"),
    ("Composer", "Ctrl+W / Ctrl+U / Ctrl+K", "delete the word left / to the line start / to the "
                                            "line end"),
    ("New conversation", "Enter / Escape", "open / cancel"),
    ("New group", "Enter / Escape", "next field, create / cancel"),
    ("Group", "Escape", "close"),
    ("Safety number", "V", "mark verified (after comparing the digits or the QR code)"),
    ("Safety number", "A", "accept a changed identity key (asks to confirm)"),
    ("Safety number", "Escape", "close"),
    ("Accept new key", "Y / N", "accept / cancel"),
    ("Help", "Escape / F1 / Q", "close"),
]

BINDING_NAMES = {
    "f1": "F1", "ctrl+q": "Ctrl+Q", "ctrl+n": "Ctrl+N", "ctrl+g": "Ctrl+G", "ctrl+t": "Ctrl+T",
    "ctrl+up": "Ctrl+Up", "alt+up": "Alt+Up", "ctrl+down": "Ctrl+Down",
    "alt+down": "Alt+Down", "ctrl+o": "Ctrl+O", "ctrl+l": "Ctrl+L", "escape": "Escape",
    "enter": "Enter", "ctrl+j": "Ctrl+J", "v": "V", "a": "A", "y": "Y", "n": "N", "q": "Q",
}
"""How binding keys are written in the table above."""
