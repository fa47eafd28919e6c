"""CI soak: does `CI=true bash .ci/run` pass from fresh clones while the machine is busy?

Issue 16's bar: CI passes 5 of 5 times in a row from fresh clones with a CPU-heavy process
beside it, and the e2e per-grid coverage minimum over those runs is recorded with its margin
to the 0.995 threshold. This script does exactly that, one run after the other:

1. ``git clone`` the repository into a fresh temporary directory and check out ``--ref``
   (resolved to a commit first, so every run tests the same code);
2. start the hog (``--hog``), niced, beside it: ``bench`` runs ``make bench`` in the clone in
   a loop once the clone's .venv is ready (busy loops until then), ``busy`` runs
   ``--hog-procs`` Python busy loops, anything else is a shell command run in a loop;
3. run ``CI=true bash .ci/run`` in the clone (not niced) with ``SKYGRID_COVERAGE_LOG`` set, so
   the e2e patrols append their per-grid coverage (tests/e2e/coverage_log.py);
4. stop the hog, collect pass/fail, the durations, the failing tests (pytest's ``FAILED`` /
   ``ERROR`` lines) and the coverage lines, and delete the clone (``--keep`` keeps it).

At the end it prints passes/N, the durations, the failing tests of any failed run and the
per-grid coverage minimum with its margin, and rewrites its own section of
docs/benchmarks.md (``## CI soak``; ``--no-docs`` to leave the page alone). Exit status 0
only when every run passed. Run it from the repository:

    .venv/bin/python -m bench.ci_soak --runs 5 --ref main

A run takes about 10-15 minutes on the shared 2-core machine (a fresh .venv, then the suite).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## CI soak: fresh clones under CPU load"
THRESHOLD = 0.995  # per-grid coverage every e2e patrol must reach (tests/e2e/coverage_log.py)
# environment that would make the clone test other code than its own
_SCRUB_ENV = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "SKYGRID_TEST_PG_URL")
_PYTEST_PROGRESS = re.compile(r"\[\s*(\d{1,3})%\]\s*$")
_PYTEST_RESULT = re.compile(r"^=+ (.*\d+ (?:passed|failed|error|errors).*) in ([\d.]+)s")
_PYTEST_FAILED = re.compile(r"^(FAILED|ERROR) (\S+)")


@dataclass
class RunResult:
    """One CI run in a fresh clone. Durations in seconds of wall time."""

    index: int
    rc: int = -1
    total_s: float = 0.0
    tests_s: float | None = None  # pytest's own "in X s"
    pytest_line: str = ""
    failed: list[str] = field(default_factory=list)
    coverage: list[dict] = field(default_factory=list)
    log: Path | None = None

    @property
    def passed(self) -> bool:
        return self.rc == 0


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


class Hog:
    """A CPU-heavy load beside the CI run, niced so it slows the run without starving it.

    ``kind``: ``bench`` (``make bench`` in the clone, looped, busy loops until the clone's
    .venv exists), ``busy`` (``procs`` Python busy loops) or a shell command (looped).
    """

    def __init__(self, kind: str, procs: int, clone: Path, nice: int, log: Path) -> None:
        self.kind, self.procs, self.clone, self.nice, self.log = kind, procs, clone, nice, log
        self._procs: list[subprocess.Popen] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _spawn(self, cmd: list[str], cwd: Path) -> subprocess.Popen:
        out = self.log.open("ab")
        p = subprocess.Popen(["nice", "-n", str(self.nice), *cmd], cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True, env=_clean_env())
        out.close()
        with self._lock:
            self._procs.append(p)
        return p

    def _busy(self, n: int) -> list[subprocess.Popen]:
        return [self._spawn([sys.executable, "-c", "while True: pass"], self.clone) for _ in range(n)]

    def _loop(self, cmd: list[str], until_ready: Path | None) -> None:
        if until_ready is not None:  # bench needs the clone's venv: busy-loop until make test built it
            warm = self._busy(self.procs)
            while not self._stop.is_set() and not until_ready.exists():
                self._stop.wait(2.0)
            for p in warm:
                self._kill(p)
        while not self._stop.is_set():
            p = self._spawn(cmd, self.clone)
            while p.poll() is None and not self._stop.is_set():
                self._stop.wait(1.0)
            if p.poll() is None:
                self._kill(p)

    def start(self) -> None:
        if self.kind == "busy":
            self._busy(self.procs)
            return
        if self.kind == "bench":
            cmd, ready = ["make", "bench"], self.clone / ".venv" / ".stamp-dev"
        else:
            cmd, ready = ["bash", "-c", self.kind], None
        self._thread = threading.Thread(target=self._loop, args=(cmd, ready), daemon=True)
        self._thread.start()

    @staticmethod
    def _kill(p: subprocess.Popen) -> None:
        if p.poll() is not None:
            return
        try:
            os.killpg(p.pid, signal.SIGTERM)  # its own session: make bench's children go too
            p.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self._lock:
            procs = list(self._procs)
        for p in procs:
            self._kill(p)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB_ENV}
    env.update(extra)
    return env


def run_once(index: int, source: str, sha: str, args: argparse.Namespace, progress, task) -> RunResult:  # noqa: ANN001
    """Clone ``sha`` fresh, run CI in it beside the hog, return what happened."""
    res = RunResult(index)
    base = Path(tempfile.mkdtemp(prefix=f"skygrid-soak{index}-", dir=args.tmp))
    clone, log = base / "repo", base / "ci.log"
    res.log = log
    cov = base / "coverage.jsonl"
    t0 = time.monotonic()
    hog = None
    plain = not progress.console.is_terminal  # a log file: a line per phase instead of a live bar
    last_pct = [-10]

    def phase(desc: str, pct: int | None = None) -> None:
        progress.update(task, description=desc, **({} if pct is None else {"completed": pct}))
        if plain and (pct is None or pct >= last_pct[0] + 10):
            if pct is not None:
                last_pct[0] = pct
            progress.console.print(f"[{time.monotonic() - t0:6.0f} s] {desc}" + (f" {pct}%" if pct is not None else ""),
                                   markup=False, highlight=False)

    try:
        phase(f"run {index}: clone", 0)
        subprocess.run(["git", "clone", "--quiet", "--no-local", source, str(clone)], check=True)
        subprocess.run(["git", "-c", "advice.detachedHead=false", "checkout", "--quiet", sha], cwd=clone, check=True)
        hog = Hog(args.hog, args.hog_procs, clone, args.nice, base / "hog.log")
        hog.start()
        phase(f"run {index}: apt / postgres / venv")
        env = _clean_env(CI="true", SKYGRID_COVERAGE_LOG=str(cov))
        with log.open("w", encoding="utf-8") as out:
            proc = subprocess.Popen(["bash", ".ci/run"], cwd=clone, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, bufsize=1, start_new_session=True)
            assert proc.stdout is not None
            for line in proc.stdout:
                out.write(line)
                out.flush()
                line = line.rstrip("\n")
                if line.startswith("== make test"):
                    phase(f"run {index}: venv + tests")
                if m := _PYTEST_PROGRESS.search(line):
                    phase(f"run {index}: tests", int(m.group(1)))
                if m := _PYTEST_RESULT.match(line):
                    res.pytest_line, res.tests_s = m.group(1), float(m.group(2))
                if m := _PYTEST_FAILED.match(line):
                    res.failed.append(f"{m.group(1)} {m.group(2)}")
            res.rc = proc.wait()
    except subprocess.CalledProcessError as e:
        res.rc, res.failed = e.returncode, [f"setup: {' '.join(map(str, e.cmd))} exited {e.returncode}"]
    finally:
        if hog is not None:
            hog.stop()
        res.total_s = time.monotonic() - t0
        if cov.exists():
            res.coverage = [json.loads(x) for x in cov.read_text(encoding="utf-8").splitlines() if x.strip()]
        if args.keep or not res.passed:
            kept = Path(args.tmp or tempfile.gettempdir()) / f"skygrid-soak-log-{sha[:8]}-{index}.log"
            if log.exists():
                shutil.copyfile(log, kept)
                res.log = kept
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    progress.update(task, description=f"run {index}: {'passed' if res.passed else 'FAILED'}", completed=100)
    return res


def coverage_min(results: list[RunResult]) -> tuple[float, str] | None:
    """Lowest per-grid coverage (fraction) over every e2e patrol of every run, and where."""
    best = None
    for r in results:
        for line in r.coverage:
            for grid, ratio in (line.get("coverage_per_grid") or {}).items():
                if best is None or ratio < best[0]:
                    best = (float(ratio), f"run {r.index}, {line.get('scenario')}, grid {grid}")
    return best


def render(results: list[RunResult], sha: str, ref: str, hog: str, started: dt.datetime) -> str:
    """The markdown section for docs/benchmarks.md."""
    from bench.run_all import machine

    n, passes = len(results), sum(r.passed for r in results)
    rows = []
    for r in results:
        mins = [min(x["coverage_per_grid"].values()) for x in r.coverage if x.get("coverage_per_grid")]
        low_run = f"{min(mins):.5f} ({len(mins)} patrols)" if mins else "—"
        tests = f"{r.tests_s / 60:.1f}" if r.tests_s is not None else "—"
        rows.append(f"| {r.index} | {'pass' if r.passed else 'FAIL'} | {r.total_s / 60:.1f} | {tests} | "
                    f"{r.pytest_line or '—'} | {low_run} |")
    low = coverage_min(results)
    failed = [f"- run {r.index}: " + (", ".join(r.failed) or f"exit {r.rc}, no pytest failure line")
              for r in results if not r.passed]
    low_txt = (f"**{low[0]:.5f}** ({low[1]}); margin to {THRESHOLD}: **{low[0] - THRESHOLD:+.5f}**"
               if low else "no coverage lines recorded")
    return (
        f"{SECTION}\n\n"
        f"`bench/ci_soak.py` (issue 16), {started:%Y-%m-%d %H:%M} UTC: `CI=true bash .ci/run` in {n} fresh "
        f"clone(s) of `{ref}` ({sha[:10]}), one after the other, each with `{hog}` running beside it "
        f"(niced). Machine: {machine()}.\n\n"
        f"Passes: **{passes} / {n}**. E2E per-grid coverage minimum over all runs: {low_txt}.\n\n"
        "| run | result | total (min) | tests (min) | pytest | lowest grid coverage |\n|---|---|---|---|---|---|\n"
        + "\n".join(rows) + "\n"
        + ("\nFailed:\n\n" + "\n".join(failed) + "\n" if failed else "")
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.ci_soak",
        description="Run `CI=true bash .ci/run` in N fresh clones of a git ref, each beside a CPU hog; "
                    "report passes/N, durations, failing tests and the e2e per-grid coverage minimum "
                    "with its margin to 0.995, and update the CI soak section of docs/benchmarks.md.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--runs", "-n", type=int, default=5, help="fresh clones to run CI in, one after the other")
    p.add_argument("--ref", default="HEAD", help="git ref (branch, tag, commit) of --repo to test")
    p.add_argument("--repo", default=str(ROOT), help="repository to clone (a local path; a worktree clones its common git dir)")
    p.add_argument("--hog", default="bench",
                   help="load beside each run: 'bench' (make bench in the clone, looped; busy loops until its "
                        ".venv exists), 'busy' (--hog-procs Python busy loops), 'none', or a shell command (looped)")
    p.add_argument("--hog-procs", type=int, default=1, help="busy loops for --hog busy (and bench's warm-up)")
    p.add_argument("--nice", type=int, default=10, help="niceness of the hog (the CI run itself is not niced)")
    p.add_argument("--tmp", default=None, help="where the clones go (default: the system temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the clones and logs (failed runs' logs are always kept)")
    p.add_argument("--no-docs", action="store_true", help="do not touch docs/benchmarks.md")
    p.add_argument("--stop-on-fail", action="store_true", help="stop after the first failed run")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be >= 1")
    if args.hog_procs < 1:
        p.error("--hog-procs must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    try:
        sha = git("rev-parse", "--verify", f"{args.ref}^{{commit}}", cwd=Path(args.repo))
    except (subprocess.CalledProcessError, FileNotFoundError, NotADirectoryError) as e:
        console.print(f"[red]ci_soak: cannot resolve --ref {args.ref!r} in --repo {args.repo}: {e}[/red]")
        return 2
    source = args.repo
    if Path(args.repo).exists():  # a worktree: clone its common git dir, where every branch lives
        source = str((Path(args.repo) / git("rev-parse", "--git-common-dir", cwd=Path(args.repo))).resolve())
    hog_desc = {"bench": "make bench", "busy": f"{args.hog_procs} busy loop(s)"}.get(args.hog, args.hog)
    if args.hog == "none":
        args.hog, hog_desc = "true; sleep 3600", "nothing"
    started = dt.datetime.now(dt.UTC)
    console.print(f"ci_soak: {args.runs} run(s) of {args.ref} ({sha[:10]}) from {source}, hog: {hog_desc}")
    results: list[RunResult] = []
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), console=console) as progress:
        overall = progress.add_task(f"soak 0/{args.runs}", total=args.runs)
        for i in range(1, args.runs + 1):
            task = progress.add_task(f"run {i}", total=100)
            r = run_once(i, source, sha, args, progress, task)
            results.append(r)
            progress.update(overall, advance=1,
                            description=f"soak {i}/{args.runs}: {sum(x.passed for x in results)} passed")
            if not r.passed and args.stop_on_fail:
                break
    out = Console(soft_wrap=True)
    n, passes = len(results), sum(r.passed for r in results)
    out.print(f"passes: {passes}/{n}")
    for r in results:
        tests = f"{r.tests_s / 60:.1f} min tests" if r.tests_s is not None else "no pytest summary"
        out.print(f"  run {r.index}: {'pass' if r.passed else 'FAIL'} rc={r.rc} {r.total_s / 60:.1f} min total, "
                  f"{tests}; {r.pytest_line or ''}", markup=False, highlight=False)
        for f in r.failed:
            out.print(f"    {f}", markup=False, highlight=False)
        if not r.passed:
            out.print(f"    log: {r.log}", markup=False, highlight=False)
    low = coverage_min(results)
    if low:
        out.print(f"e2e per-grid coverage minimum: {low[0]:.5f} ({low[1]}), margin to {THRESHOLD}: "
                  f"{low[0] - THRESHOLD:+.5f}", markup=False, highlight=False)
    else:
        out.print("e2e per-grid coverage: no lines recorded (did the e2e tests run?)")
    if not args.no_docs:
        from bench.sections import write_section

        write_section(render(results, sha, args.ref, hog_desc, started), DOCS, heading=SECTION)
        out.print(f"updated {DOCS}", markup=False, highlight=False)
    return 0 if passes == n else 1


if __name__ == "__main__":
    sys.exit(main())
