"""The Textual chat app: a thin view over `client.client.Client`.

Nothing in here touches keys, sessions or the store directly; every action goes
through the library, and every change the library makes reaches the view as an
event (`MessageEvent`, `ContactEvent`, `StatusEvent`).

Modules: `app` (the App, small), `chat` (the main screen), `contacts`,
`conversation`, `composer`, `status` (widgets), `screens` (dialogs), `keys` (the
key table the help screen shows), `render` (pure formatting), `capture` (a plain
text rendering of the screen, for snapshots and docs).
"""
