"""Cold start of the scriptable client (issue 14 item 5).

    .venv/bin/python bench/start.py                 # 15 paired rounds, ~1 min
    .venv/bin/python bench/start.py --rounds 30
    .venv/bin/python bench/start.py --no-bytecode-cache   # compile every module each run
    .venv/bin/python bench/start.py --before /tmp/main-tree  # another checkout, same rounds
    .venv/bin/python bench/start.py --demo          # and the demo's first paint (headless)

Starts a real relay (`blindrelay serve`) and two profiles (alice, bob; passphrase
protected, the default Argon2id cost), then times whole processes, as a user's shell
would, in paired rounds. Each round runs, in a fresh random order:

* `python -c pass`: the interpreter's own start;
* `python -c "import cryptography, nacl"`: the start plus the two crypto libraries;
* `python -c <Argon2id>`: that plus one key derivation at the profile's cost, which
  every command that opens a profile pays once (it is the point of the passphrase);
* `blindrelay --help`, `blindrelay send bob TEXT` (alice) and `blindrelay recv` (bob,
  who then has one message to print).

For each it prints the median wall time with its minimum and maximum, and the median
of the per-round ratios to the two baselines, with their minimum and maximum: a ratio
from the same round holds when the shared machine's speed drifts. No best-of figure.
The relay is pinned to one CPU and the timed commands to another when the machine has
two. By default the bytecode cache is used (as in an installed copy: pip compiles
the package, and a checkout's __pycache__ fills on the first run; one warm-up round
is not counted); `--no-bytecode-cache` sets PYTHONDONTWRITEBYTECODE and removes the
cache first, so every module is compiled from source at every start.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ holds a protocol.py: keep this directory off the import path so `import
# protocol` finds the package, and find the packages from a plain checkout.
_BENCH_DIR = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH_DIR]
sys.path.insert(0, str(_BENCH_DIR.parent))

import argparse
import os
import platform
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence

from bench._support import ROOT, exit_on_sigterm, relay_server
from client.store_meta import KdfParams  # the cost a new profile gets

PASSPHRASE = "bench start passphrase"
ARGON2ID = (f"import nacl.pwhash.argon2id as a; a.kdf(32, b'x', bytes(a.SALTBYTES), "
            f"opslimit={KdfParams().opslimit}, memlimit={KdfParams().memlimit})")
BASELINES = ("python -c pass", "import cryptography, nacl")


def _pin(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def _time(argv: Sequence[str], env: dict[str, str], cpu: int | None,
          cwd: Path = ROOT) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, check=False, preexec_fn=lambda: _pin(cpu))
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): "
                         f"{done.stderr.decode(errors='replace')}")
    return elapsed


DEMO_PROBE = """
import asyncio
from teaching.demo.app import DemoApp

async def main() -> None:
    app = DemoApp(pace=0)
    async with app.run_test(size=(120, 36)):  # returns once the first screen is up
        print("painted", flush=True)
        while not app.ready:
            await asyncio.sleep(0.005)
        print("ready", flush=True)
        app.exit()

asyncio.run(main())
"""


def _time_demo(env: dict[str, str], cpu: int | None) -> tuple[float, float]:
    """`blindrelay demo` headless (Textual's run_test driver, as the tests drive it):
    seconds from the process's start to its first screen, and to both chats ready."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", DEMO_PROBE], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True,
                            preexec_fn=lambda: _pin(cpu))
    assert proc.stdout is not None
    marks = []
    for line in proc.stdout:
        marks.append(time.perf_counter() - start)
        if line.strip() == "ready":
            break
    proc.wait(30)
    if len(marks) != 2:
        raise SystemExit(f"the demo did not start ({proc.returncode})")
    return marks[0], marks[1]


def _spread(values: Sequence[float], unit: str = "s") -> str:
    fmt = "{:.3f}" if unit == "s" else "{:.2f}"
    return (f"{fmt.format(statistics.median(values))} {unit} "
            f"({fmt.format(min(values))}-{fmt.format(max(values))})").replace(" x", "x")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--rounds", type=int, default=15, help="paired rounds (default 15)")
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help="compile every module from source at every start")
    parser.add_argument("--demo", action="store_true",
                        help="also time `blindrelay demo` (headless) to its first screen "
                        "and to both chats ready, in the same rounds")
    parser.add_argument("--before", type=Path, metavar="TREE",
                        help="another checkout (e.g. `git archive main | tar -x -C TREE`): "
                        "its send, recv and --help are timed in the same rounds, for a "
                        "before/after ratio")
    args = parser.parse_args(argv)
    exit_on_sigterm()

    env = {k: v for k, v in os.environ.items() if not k.startswith("BLINDRELAY_")}
    env["BLINDRELAY_PASSPHRASE"] = PASSPHRASE
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if args.no_bytecode_cache:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        for tree in (ROOT, args.before) if args.before is not None else (ROOT,):
            for folder in ("blindrelay", "client", "protocol", "server", "teaching"):
                for cache in (tree / folder).rglob("__pycache__"):
                    shutil.rmtree(cache, ignore_errors=True)
    cpus = sorted(os.sched_getaffinity(0))
    relay_cpu, client_cpu = (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)

    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="bench-start-") as tmp:
        work = Path(tmp)
        with relay_server(work / "relay", log=work / "relay.log") as (relay, line):
            if relay_cpu is not None:
                os.sched_setaffinity(relay.pid, {relay_cpu})
            url = line  # what follows "listening on "
            alice, bob = str(work / "alice"), str(work / "bob")
            for name, home in (("alice", alice), ("bob", bob)):
                _time([py, "-m", "blindrelay", "init", name, "--server", url,
                       "--home", home], env, client_cpu)
            commands: dict[str, list[str]] = {
                BASELINES[0]: [py, "-c", "pass"],
                BASELINES[1]: [py, "-c", "import cryptography, nacl"],
                "Argon2id (profile cost)": [py, "-c", ARGON2ID],
                "blindrelay --help": [py, "-m", "blindrelay", "--help"],
                "blindrelay send": [py, "-m", "blindrelay", "send", "bob", "a message",
                                    "--home", alice],
                "blindrelay recv": [py, "-m", "blindrelay", "recv", "--home", bob],
            }
            where = {name: ROOT for name in commands}
            if args.before is not None:
                for name in ("blindrelay --help", "blindrelay send", "blindrelay recv"):
                    commands[f"{name} (before)"] = commands[name]
                    where[f"{name} (before)"] = args.before.resolve()
            times: dict[str, list[float]] = {name: [] for name in commands}
            if args.demo:
                times["demo: first screen"], times["demo: chats ready"] = [], []
            order = list(commands)
            for round_no in range(args.rounds + 1):  # round 0 warms up, not counted
                random.shuffle(order)
                # send before recv in each round, so recv always has one message
                order.sort(key=lambda n: n.startswith("blindrelay recv"))
                for name in order:
                    elapsed = _time(commands[name], env, client_cpu, where[name])
                    if round_no:
                        times[name].append(elapsed)
                if args.demo:
                    painted, ready = _time_demo(env, client_cpu)
                    if round_no:
                        times["demo: first screen"].append(painted)
                        times["demo: chats ready"].append(ready)

    print(f"cold start, {args.rounds} paired rounds; python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, relay on CPU {relay_cpu}, commands on CPU {client_cpu}; "
          f"bytecode cache {'off' if args.no_bytecode_cache else 'on'}")
    print(f"{'command':32} {'wall, median (min-max)':>24}  {'/ python -c pass':>22}  "
          f"{'/ import cryptography, nacl':>28}  {'minus Argon2id run':>24}")
    argon = times["Argon2id (profile cost)"]
    for name, values in times.items():
        ratios = [[v / b for v, b in zip(values, times[base], strict=True)]
                  for base in BASELINES]
        extra = ""
        if name.startswith("blindrelay") and "--help" not in name:
            extra = _spread([v - a for v, a in zip(values, argon, strict=True)])
        print(f"{name:32} {_spread(values):>24}  {_spread(ratios[0], 'x'):>22}  "
              f"{_spread(ratios[1], 'x'):>28}  {extra:>24}")
    if args.before is not None:
        print("after/before, per round:")
        for name in ("blindrelay --help", "blindrelay send", "blindrelay recv"):
            pairs = zip(times[name], times[f"{name} (before)"], strict=True)
            print(f"  {name:30} {_spread([a / b for a, b in pairs], 'x')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
