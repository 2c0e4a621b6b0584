"""Issue 9 A.1/A.2, done when: the CLI (`recv`) and the chat app, run under a
pseudo-terminal and fed every C0/C1 control, bidi control and zero-width character
from a hostile contact and from a hostile relay's ERROR text, write no escape sequence
the app did not write itself; the injected text shows up only as placeholders.

Real processes throughout: a real relay process (or the hostile relay of
`hostile_relay.py`), `python -m blindrelay recv` and `python -m blindrelay chat` on a
pty, raw bytes inspected with `terminal.Screen`."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from client.client import Client
from tests.adversarial.payloads import EVERYTHING, SEQUENCES, TERMINAL_STEERING
from tests.adversarial.terminal import Screen, blindrelay_argv, run_in_pty
from tests.client.helpers import FAST_KDF, PASSPHRASE, make_client, shut
from tests.support import ROOT, relay_process

ENV = {"BLINDRELAY_PASSPHRASE": PASSPHRASE.decode()}
BENIGN = "a harmless message\nwith a second line zz-end"
HOSTILE = EVERYTHING + " zz-end"

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a pty")


async def _deliver(tmp: Path, url: str, sender: str, recipient: str, text: str) -> Path:
    """`sender` writes `text` to `recipient`, who is offline: it waits in the relay's
    queue. Returns the recipient's profile directory."""
    them = await make_client(tmp, recipient, url)
    await them.disconnect()
    sender_client = await make_client(tmp, sender, url)
    await sender_client.send_text(recipient, text)
    await shut(sender_client, them)
    return tmp / recipient


@contextlib.contextmanager
def hostile_relay_process() -> Iterator[str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.adversarial.hostile_relay"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on" in line, line
        yield line.split()[-1]
    finally:
        proc.kill()
        proc.wait(5)


def profile_on(tmp: Path, name: str, url: str) -> Path:
    """A profile (not yet registered) whose relay is `url`."""
    Client.create(tmp / name, name, url, PASSPHRASE, FAST_KDF).close()
    return tmp / name


def assert_no_injection(screen: Screen, allowed: Screen | None = None) -> None:
    """Nothing steering the terminal except what the app itself writes (the escape
    sequences and control characters of `allowed`, the same run on harmless text)."""
    for name, sequence in SEQUENCES.items():
        assert sequence.encode() not in screen.raw, f"{name} reached the terminal"
    own_shapes = allowed.shapes() if allowed is not None else set()
    assert screen.shapes() <= own_shapes, \
        f"sequences the app never writes: {sorted(screen.shapes() - own_shapes)[:10]}"
    own_controls = set(allowed.text) if allowed is not None else {"\r", "\n"}
    stray = (set(screen.text) & TERMINAL_STEERING) - own_controls
    assert not stray, f"raw controls reached the terminal: {sorted(map(hex, map(ord, stray)))}"
    assert "PWNED-TITLE" in screen.text  # shown, as text


# -- the CLI


def test_recv_shows_a_hostile_message_as_placeholders(tmp_path: Path) -> None:
    with relay_process(tmp_path / "relay") as relay:
        home = asyncio.run(_deliver(tmp_path, relay.url, "mallory", "bob", HOSTILE))
        code, raw = run_in_pty(blindrelay_argv("recv", "--home", home), ENV)
    screen = Screen.parse(raw)
    assert code == 0, raw
    assert screen.sequences == []  # recv writes no escape sequence of its own
    assert_no_injection(screen)
    assert "␛]0;PWNED-TITLE␇" in screen.text and "␛]52;c;UFdORUQ=␇" in screen.text
    # the second line is indented: it cannot pass for a message of alice's
    lines = screen.text.replace("\r\n", "\n").splitlines()
    assert not any(line.startswith("[2026-01-01 12:00:00] alice") for line in lines)
    assert any(line.startswith("    [2026-01-01 12:00:00] alice: FORGED-LINE")
               for line in lines)


def test_recv_shows_a_hostile_relay_error_on_one_line(tmp_path: Path) -> None:
    with hostile_relay_process() as url:
        home = profile_on(tmp_path, "bob", url)
        code, raw = run_in_pty(blindrelay_argv("recv", "--home", home), ENV)
    screen = Screen.parse(raw)
    assert code != 0
    assert screen.sequences == []
    assert_no_injection(screen)
    lines = [line for line in screen.text.replace("\r\n", "\n").splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("blindrelay recv: "), lines


# -- the chat app


def _open_first_conversation(marker: str) -> list[tuple[Callable[[bytes], bool], bytes]]:
    return [
        (lambda out: "online" in Screen.parse(out).text, b"\r"),  # Enter opens it
        (lambda out: marker in Screen.parse(out).text, b"\x11"),  # Ctrl+Q quits
    ]


def test_chat_shows_a_hostile_message_as_placeholders(tmp_path: Path) -> None:
    with relay_process(tmp_path / "relay") as relay:
        runs: dict[str, Screen] = {}
        for label, text in (("benign", BENIGN), ("hostile", HOSTILE)):
            home = asyncio.run(_deliver(tmp_path / label, relay.url, f"m{label}",
                                        f"b{label}", text))
            code, raw = run_in_pty(blindrelay_argv("chat", "--home", home), ENV,
                                   steps=_open_first_conversation("zz-end"))
            assert code == 0, raw[-3000:]
            runs[label] = Screen.parse(raw)
    assert_no_injection(runs["hostile"], runs["benign"])
    assert "␛]0;PWNED-TITLE␇" in runs["hostile"].text


def test_chat_survives_a_hostile_relay_error(tmp_path: Path) -> None:
    """The ERROR text carries Textual markup ("[/oops]") too: the app must not parse
    it (that crashed it at every login) and must not let its controls through."""
    with hostile_relay_process() as url:
        home = profile_on(tmp_path, "bob", url)
        code, raw = run_in_pty(
            blindrelay_argv("chat", "--home", home), ENV,
            steps=[(_refusal_shown, b"\x11")])
    screen = Screen.parse(raw)
    assert code == 0, screen.text[-3000:]
    assert "Traceback" not in screen.text
    assert "refused" in screen.text
    assert_no_injection(screen, _benign_offline_run(tmp_path))


def _refusal_shown(out: bytes) -> bool:
    """The status line can show the relay's text before the refusal's notification:
    quit only once the notification is on screen too."""
    text = Screen.parse(out).text
    return "PWNED-TITLE" in text and "refused" in text


def _benign_offline_run(tmp: Path) -> Screen:
    """The app's own sequences when its relay refuses it with a harmless text."""
    code = (
        "import asyncio, sys\n"
        "from tests.adversarial.hostile_relay import hostile_relay\n"
        "async def main():\n"
        "    async with hostile_relay(text='a harmless refusal PWNED-TITLE') as url:\n"
        "        print('hostile relay listening on', url, flush=True)\n"
        "        await asyncio.Event().wait()\n"
        "asyncio.run(main())\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        home = profile_on(tmp / "benign", "bob", url)
        code_, raw = run_in_pty(
            blindrelay_argv("chat", "--home", home), ENV,
            steps=[(lambda out: "PWNED-TITLE" in Screen.parse(out).text, b"\x11")])
        assert code_ == 0
        return Screen.parse(raw)
    finally:
        proc.kill()
        proc.wait(5)


# -- groups (issue 13): the group's name, the sender and the text are all a peer's


async def _deliver_to_group(tmp: Path, url: str, text: str) -> Path:
    """mallory makes a group with a hostile name and writes `text` into it while bob
    is offline. Returns bob's profile directory."""
    bob = await make_client(tmp, "bob", url)
    await bob.disconnect()
    mallory = await make_client(tmp, "mallory", url)
    view = await mallory.groups.create("club" + text[:40], ["bob"])
    await mallory.groups.send_text(view.group_id, text)
    await shut(mallory)
    await shut(bob)
    return tmp / "bob"


def test_recv_and_group_history_show_a_hostile_group_as_placeholders(tmp_path: Path) -> None:
    with relay_process(tmp_path / "relay") as relay:
        home = asyncio.run(_deliver_to_group(tmp_path, relay.url, HOSTILE))
        code, raw = run_in_pty(blindrelay_argv("recv", "--home", home), ENV)
        history_code, history_raw = run_in_pty(
            blindrelay_argv("group", "list", "--home", home), ENV)
    for exit_code, output in ((code, raw), (history_code, history_raw)):
        screen = Screen.parse(output)
        assert exit_code == 0, output
        assert screen.sequences == []  # neither writes an escape sequence of its own
        for name, sequence in SEQUENCES.items():
            assert sequence.encode() not in screen.raw, f"{name} reached the terminal"
        stray = set(screen.text) & TERMINAL_STEERING - {"\r", "\n"}
        assert not stray, f"raw controls reached the terminal: {sorted(map(hex, map(ord, stray)))}"
    assert "PWNED-TITLE" in Screen.parse(raw).text  # the text is shown, as text
