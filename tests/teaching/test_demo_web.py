"""`blindrelay demo --web` (projector mode), in a real headless Chromium.

The demo is served by a real `blindrelay demo --web` process on loopback; Chromium
opens the printed URL, runs textual-serve's JS terminal, and the test reads what it
draws (tests/teaching/browser.py) and photographs it. Without Chromium on the machine
the browser test skips and says how to get it; .ci/run installs it, so CI runs it.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import struct
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from blindrelay.cli import main
from teaching.demo.web import INSTALL_HINT, WebOptions, demo_command
from tests.support import ROOT
from tests.teaching.browser import NO_CHROMIUM, chromium_page, find_chromium

URL = re.compile(r"open (http://127\.0\.0\.1:\d+/\?fontsize=(\d+))")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class WebDemo:
    def __init__(self, proc: asyncio.subprocess.Process, url: str) -> None:
        self.proc = proc
        self.url = url

    def descendants(self) -> set[int]:
        """The processes the server started (one demo per open tab), from /proc."""
        found: set[int] = set()
        todo = [self.proc.pid]
        while todo:
            pid = todo.pop()
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                found.add(child)
                todo.append(child)
        return found


@pytest.fixture
async def web_demo(request: pytest.FixtureRequest) -> AsyncIterator[WebDemo]:
    """`blindrelay demo --web --theme projector` playing `drop`, on a free loopback port
    (its pace: the test's parameter, else 0.3 s)."""
    pace = getattr(request, "param", 0.3)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "blindrelay", "demo", "--web", "--theme", "projector",
        "--scenario", "drop", "--pace", str(pace), cwd=ROOT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        match = URL.search(line)
        if match is None:
            err = (await proc.stderr.read()).decode() if proc.returncode is not None else ""
            raise AssertionError(f"no URL printed: {line!r} {err}")
        assert match.group(2) == "24"  # the projector theme's larger font
        yield WebDemo(proc, match.group(1))
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_the_demo_in_a_browser_shows_the_three_panes(
        web_demo: WebDemo, tmp_path: Path) -> None:
    chromium = need_chromium()
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    async with chromium_page(chromium, profile) as page:
        await page.call("Emulation.setDeviceMetricsOverride", width=1920, height=1080,
                        deviceScaleFactor=1, mobile=False)
        await page.call("Page.navigate", url=web_demo.url)
        # the three panes: Alice's chat, Bob's chat, the relay's view with its rows
        text = await page.wait_for_text("blindrelay · alice", "blindrelay · bob",
                                        "Relay: what the server sees", timeout=90)
        text = await page.wait_for_text("stored", "envelope", "Lesson:", timeout=90)
        # a send, sealed (no login on its connection: the default) or authenticated
        # (a first contact before the recipient's capability arrived)
        assert re.search(r"(SealedSend from \(no login\)|Send from alice), \d+ B", text), text
        # the relay's rows and the narration, never what was typed, in the relay pane
        relay_columns = [line.split("││")[-1] for line in text.splitlines() if "││" in line]
        assert any(re.search(r"stored\s+envelope [0-9a-f]{8} to (alice|bob), \d+ B", c)
                   for c in relay_columns), text
        assert not any("Message two" in c for c in relay_columns)
        shot = await page.screenshot(tmp_path / "demo-web.png")
        demos = web_demo.descendants()
        assert demos, "no demo process for the open tab"
    # a non-trivial PNG of the whole 1920x1080 page
    assert shot.startswith(PNG_SIGNATURE)
    width, height = struct.unpack(">II", shot[16:24])
    assert (width, height) == (1920, 1080)
    assert len(shot) > 30_000, f"{len(shot)} bytes: a blank page?"
    # closing the tab ends its demo (a relay and two people's keys), the server stays up
    await _until_gone(demos, 30)
    assert web_demo.proc.returncode is None


@pytest.mark.parametrize("web_demo", [2.0], indirect=True)
async def test_stopping_the_server_ends_every_open_tabs_demo(
        web_demo: WebDemo, tmp_path: Path) -> None:
    chromium = need_chromium()
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    async with chromium_page(chromium, profile, 1280, 720) as page:
        await page.call("Page.navigate", url=web_demo.url)
        # 24px at 1280x720 is about 90 columns: the demo's narrow layout, one pane at a time
        await page.wait_for_text("blindrelay · alice", "f2 Pane", timeout=90)
        # in the middle of the scenario (a demo told to stop there by textual-serve's
        # own "quit" never exits)
        await page.wait_for_text("Message one", timeout=60)
        demos = web_demo.descendants()
        assert demos
        started = time.monotonic()
        web_demo.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(web_demo.proc.wait(), 40) == 0
        assert time.monotonic() - started < 30  # not aiohttp's minute for open sockets
        await _until_gone(demos, 10)


def need_chromium() -> str:
    """Chromium's path; else skip, or fail under CI, where .ci/run installs it."""
    chromium = find_chromium()
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {NO_CHROMIUM}")
        pytest.skip(NO_CHROMIUM)
    return chromium


async def _until_gone(pids: set[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = {p for p in pids if _alive(p)}
        if not alive:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"demo processes still running: {sorted(alive)}")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_each_tab_runs_the_same_demo_options() -> None:
    command = demo_command(WebOptions(scenario="key-swap", pace=0.5, unlogged=True,
                                      theme="projector"))
    assert command.startswith("exec ") and "-m blindrelay demo" in command
    assert "--scenario key-swap" in command and "--unlogged" in command
    assert "--theme projector" in command and "--pace 0.5" in command
    assert "--web" not in command
    assert WebOptions(theme="projector").page_font_size == 24
    assert WebOptions().page_font_size == 16
    assert WebOptions(theme="projector", font_size=30).page_font_size == 30


def test_without_textual_serve_it_says_how_to_install_it(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name in [m for m in sys.modules if m.startswith(("textual_serve",
                                                          "teaching.demo.web_server"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "textual_serve", None)  # import fails: not installed
    assert main(["demo", "--web"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == INSTALL_HINT and "pip install 'blindrelay[web]'" in err


@pytest.mark.parametrize("argv", [["--font-size", "20"], ["--port", "8000"],
                                  ["--web", "--text"], ["--web", "--font-size", "200"]])
def test_web_options_are_refused_where_they_would_be_ignored(
        argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["demo", *argv])
    assert exit_.value.code == 2
    assert "demo: --" in capsys.readouterr().err


def test_ci_installs_chromium_then_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    command = next(line for line in readme.splitlines()
                   if "pip install -q -e '.[test]'" in line and "pytest" in line)
    script = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert script[-1] == command
    install = next(i for i, line in enumerate(script) if "apt-get install" in line)
    assert "chromium" in script[install] and install < len(script) - 1
