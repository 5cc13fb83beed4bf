"""Cold ``import humasflow`` time, against its dependencies' own import time.

Run by hand::

    .venv/bin/python bench/import_time.py             # 5 runs of each command
    .venv/bin/python bench/import_time.py --runs 11
    .venv/bin/python bench/import_time.py --before /tmp/old/src   # against another checkout

Each command runs in a fresh interpreter (``sys.executable -I -X importtime -c ...``,
from a temporary folder so nothing local shadows a module), with the commands
interleaved run by run; the median wall time of each is reported:

- ``pass``: the interpreter's own start-up;
- ``import sqlalchemy, transitions, pluggy, attrs, click``: the dependencies' cost;
- the same plus ``requests`` (humasflow imports requests at import time too);
- ``import humasflow``;
- ``humasflow --help``, as the console script runs it (``main()`` with that argument
  list): the command's start-up, its imports and the help it prints;
- ``humasflow list --help``, a command's own help, the same way (the group's options
  are parsed and the group's callback runs before the command's help is printed).

Targets: ``import humasflow`` 150 ms and each ``--help`` 250 ms in all, start-up
included (``pass`` is the interpreter's start-up in the same run, printed beside them).

humasflow's own share is ``humasflow - dependencies``. From the ``-X importtime`` report
of the humasflow runs it also lists the ten biggest cumulative imports and the self time
by top-level package (medians over the runs). Byte-code caches are warmed by one
untimed run of each command first, so "cold" means a new process, not a cold disk.
"""

from __future__ import annotations

# ruff: noqa: E402 - the imports below come after the import path fix
import os
import sys

# bench/transitions.py shares its name with the ``transitions`` library; keep this
# folder off the import path.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse
import datetime as dt
import platform
import re
import statistics
import subprocess
import tempfile
import time
from collections import defaultdict

DEPS = "sqlalchemy, transitions, pluggy, attrs, click"
COMMANDS = {
    "python -c pass": "pass",
    f"import {DEPS}": f"import {DEPS}",
    f"import {DEPS}, requests": f"import {DEPS}, requests",
    "import humasflow": "import humasflow",
    # What the console script does (its wall time includes printing the help).
    "humasflow --help": ("import sys; sys.argv = ['humasflow', '--help']; "
                         "from humasflow.cli import main; main()"),
    "humasflow list --help": ("import sys; sys.argv = ['humasflow', 'list', '--help']; "
                              "from humasflow.cli import main; main()"),
}
#: The targets: each command's whole wall time, start-up included.
IMPORT_TARGET_MS = 150.0
HELP_TARGET_MS = 250.0
HELPS = ("humasflow --help", "humasflow list --help")
#: What a help should not need (the store, the state machine, the publishers, the
#: plugins, the tables) and humasflow's modules behind them.
HEAVY = ("sqlalchemy", "transitions", "requests", "pluggy", "rich")
LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)\s*$")


def run(code: str, cwd: str) -> tuple[float, str]:
    """Run ``code`` in a new interpreter; return the wall seconds and its stderr."""
    argv = [sys.executable, "-I", "-X", "importtime", "-c", code]
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)  # noqa: S603
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{code!r} failed:\n{done.stderr[-2000:]}")
    return elapsed, done.stderr


def parse(report: str) -> list[tuple[str, int, int, int]]:
    """(module, depth, self us, cumulative us) for each line of an importtime report."""
    rows = []
    for line in report.splitlines():
        m = LINE.match(line)
        if m:
            depth = (len(m.group(3)) - 1) // 2
            rows.append((m.group(4), depth, int(m.group(1)), int(m.group(2))))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each command (default 5)")
    parser.add_argument("--top", type=int, default=10, help="imports to list (default 10)")
    parser.add_argument("--before", metavar="SRC",
                        help="also time humasflow's commands with the humasflow package of "
                             "this folder (another checkout's src/, e.g. from git archive), "
                             "interleaved with the installed one")
    args = parser.parse_args(argv)

    commands = dict(COMMANDS)
    if args.before:
        # The same commands, humasflow found first in SRC (the plugins stay installed).
        where = f"import sys; sys.path.insert(0, {os.path.abspath(args.before)!r}); "
        for name in ("import humasflow", *HELPS):
            commands[f"{name} [before]"] = where + COMMANDS[name]
    walls: dict[str, list[float]] = defaultdict(list)
    parsed: dict[str, list[list[tuple[str, int, int, int]]]] = defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="humasflow-import-") as cwd:
        for code in commands.values():
            run(code, cwd)  # byte-code caches, OS file cache
        for i in range(args.runs):
            names = list(commands) if i % 2 == 0 else list(commands)[::-1]
            for name in names:
                elapsed, stderr = run(commands[name], cwd)
                walls[name].append(elapsed)
                parsed[name].append(parse(stderr))
    reports = parsed["import humasflow"]

    med = {name: statistics.median(v) * 1e3 for name, v in walls.items()}
    start_up = med["python -c pass"]
    deps = med[f"import {DEPS}"]
    deps_req = med[f"import {DEPS}, requests"]
    total = med["import humasflow"]

    print(f"humasflow import time - {dt.date.today().isoformat()} - Python "
          f"{platform.python_version()} ({sys.executable}); {args.runs} runs each, interleaved, "
          "-I -X importtime")
    print()
    print(f"{'command':<64} {'median ms':>9} {'min':>7} {'max':>7} {'- start-up':>10}")
    print("-" * 101)
    for name in commands:
        v = [x * 1e3 for x in walls[name]]
        print(f"{name:<64} {med[name]:9.1f} {min(v):7.1f} {max(v):7.1f} "
              f"{med[name] - start_up:10.1f}")
    print()
    loaded_by_import = {m for report in reports for m, *_ in report}
    if any(m in loaded_by_import for m in HEAVY):
        own = total - deps
        print(f"humasflow's own share = import humasflow - dependencies = {total:.1f} - "
              f"{deps:.1f} = {own:.1f} ms ({own / (total - start_up):.0%} of the import above "
              "start-up)")
        print(f"  (wall-time differences; with requests in the baseline: "
              f"{total - deps_req:.1f} ms, requests alone: {deps_req - deps:.1f} ms)")
    else:  # the names are imported when first used: the dependencies are no baseline
        print(f"import humasflow loads none of {', '.join(HEAVY)}: it costs "
              f"{total - start_up:.1f} ms above start-up (the dependencies alone "
              f"{deps - start_up:.1f} ms, with requests {deps_req - start_up:.1f} ms)")
    print(f"import humasflow = {total:.1f} ms ({total - start_up:.1f} ms above python -c pass, "
          f"{total / start_up:.2f}x it); target <= {IMPORT_TARGET_MS:.0f} ms: "
          f"{'met' if total <= IMPORT_TARGET_MS else 'NOT met'}")
    for name in HELPS:
        helped = med[name]
        print(f"{name} = {helped:.1f} ms ({helped - start_up:.1f} ms above python -c pass, "
              f"{helped / start_up:.2f}x it); target <= {HELP_TARGET_MS:.0f} ms: "
              f"{'met' if helped <= HELP_TARGET_MS else 'NOT met'}")
        loaded = {m for report in parsed[name] for m, *_ in report}
        heavy = [m for m in HEAVY if m in loaded]
        # humasflow's own modules, and the plugin distributions (humasflow_x...) by name.
        own = sorted({m if m.startswith("humasflow.") else m.split(".")[0] for m in loaded
                      if m.startswith("humasflow")} - {"humasflow", "humasflow.cli"})
        print(f"  heavy dependencies it imports: {', '.join(heavy) or 'none'}; humasflow's "
              f"modules and plugins besides humasflow.cli: {', '.join(own) or 'none'}")
    if args.before:
        print(f"before ({args.before}) -> now, median ms: " + "; ".join(
            f"{name} {med[name + ' [before]']:.1f} -> {med[name]:.1f} "
            f"({med[name] / med[name + ' [before]']:.2f}x)"
            for name in ("import humasflow", *HELPS)))

    # The same share from inside the process, less exposed to noise: the self time of
    # every module `import humasflow` loads that the dependency baseline does not.
    baseline = {m for report in parsed[f"import {DEPS}"] for m, *_ in report}
    extra_total: list[int] = []
    extra_by_package: dict[str, list[int]] = defaultdict(list)
    for report in reports:
        per_package: dict[str, int] = defaultdict(int)
        for module, _, self_us, _ in report:
            if module not in baseline:
                per_package[module.split(".")[0]] += self_us
        extra_total.append(sum(per_package.values()))
        for package, us in per_package.items():
            extra_by_package[package].append(us)
    extra = sorted(extra_by_package, key=lambda p: statistics.median(extra_by_package[p]),
                   reverse=True)
    print(f"modules loaded by `import humasflow` but not by the dependency baseline: "
          f"{statistics.median(extra_total) / 1e3:.1f} ms of self time (-X importtime, median); "
          "by top-level package:")
    print("  " + ", ".join(f"{p} {statistics.median(extra_by_package[p]) / 1e3:.1f}"
                           for p in extra[:12]))

    # Medians over the runs, per module, from the -X importtime reports.
    cumulative: dict[str, list[int]] = defaultdict(list)
    depth: dict[str, int] = {}
    self_by_package: dict[str, list[int]] = defaultdict(list)
    for report in reports:
        per_package: dict[str, int] = defaultdict(int)
        for module, level, self_us, cum_us in report:
            cumulative[module].append(cum_us)
            depth[module] = level
            per_package[module.split(".")[0]] += self_us
        for package, us in per_package.items():
            self_by_package[package].append(us)
    top = sorted(cumulative, key=lambda m: statistics.median(cumulative[m]), reverse=True)
    print()
    print(f"top {args.top} cumulative imports in `import humasflow` (-X importtime, median us "
          "over the runs; depth 0 = imported by the -c code or at start-up):")
    print(f"  {'cumulative ms':>13} {'depth':>5}  module")
    for module in top[:args.top]:
        print(f"  {statistics.median(cumulative[module]) / 1e3:13.1f} {depth[module]:>5}  "
              f"{module}")
    print()
    print("self time of all of `import humasflow` by top-level package (median ms, biggest "
          "first):")
    packages = sorted(self_by_package, key=lambda p: statistics.median(self_by_package[p]),
                      reverse=True)
    shown = [f"{p} {statistics.median(self_by_package[p]) / 1e3:.1f}" for p in packages[:14]]
    print("  " + ", ".join(shown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
