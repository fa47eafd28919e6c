"""Run every benchmark under bench/ and rewrite docs/benchmarks.md.

Each ``bench/bench_*.py`` exposes ``run() -> str`` returning a markdown section. The page
starts with the machine the figures came from, because these machines are noisy: compare
ratios measured in one run, not absolute numbers across runs.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import platform
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "benchmarks.md"
# sections written by scripts outside bench_*.py (too slow for `make bench`), kept on a rewrite
KEPT_SECTIONS = ("## CI soak",)


def kept_sections(text: str) -> list[str]:
    """The sections of an existing page that ``make bench`` does not produce but must keep."""
    parts = ["## " + p for p in ("\n" + text).split("\n## ")[1:]]
    return [p.rstrip("\n") + "\n" for p in parts if p.startswith(KEPT_SECTIONS)]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal")).split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    names = sorted(p.stem for p in (ROOT / "bench").glob("bench_*.py"))
    if argv:
        names = [n for n in names if any(a in n for a in argv)]
    sections, failed = [], []
    for name in names:
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        try:
            section = importlib.import_module(f"bench.{name}").run()
        except Exception:
            failed.append(name)
            section = f"## {name}\n\nFAILED:\n\n```\n{traceback.format_exc()[-3000:]}\n```\n"
        print(section, flush=True)
        sections.append(section.rstrip() + f"\n\n_({name}: {time.perf_counter() - t0:.0f} s)_\n")
    header = (
        "# Benchmarks\n\n"
        f"Written by `make bench` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC.\n\n"
        f"Machine: {machine()}.\n\n"
        "Figures from one run on a shared 2-core machine; ratios within one run are meaningful, "
        "absolute times are noisy.\n\n"
    )
    if argv and OUT.exists():
        print("(partial run: docs/benchmarks.md not rewritten; run `make bench` for the whole page)")
    else:
        kept = kept_sections(OUT.read_text(encoding="utf-8")) if OUT.exists() else []
        OUT.write_text(header + "\n".join(sections + kept), encoding="utf-8")
        print(f"wrote {OUT}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
