"""Per-grid coverage figures of the e2e patrols, written where CI runs can be compared.

When ``SKYGRID_COVERAGE_LOG`` names a file, each e2e patrol appends one JSON line to it:
``{"test", "scenario", "coverage_ratio", "coverage_per_grid", "threshold", "min_grid",
"min_ratio", "margin", "frames_dropped", "frames_requested", "wall_time_s", "time"}``
(ratios are imaged fractions 0..1 of each grid's flyable area). ``bench/ci_soak.py`` sets it
and reports the minimum and its margin to the threshold over several CI runs. Unset: nothing
is written. The line is written before the test asserts, so a failing run is recorded too.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

ENV = "SKYGRID_COVERAGE_LOG"
THRESHOLD = 0.995  # the per-grid coverage every e2e patrol must reach (fraction of the grid)


def record(test: str, summary: dict[str, Any], threshold: float = THRESHOLD) -> None:
    """Append the patrol's per-grid coverage to the file named by ``SKYGRID_COVERAGE_LOG``.

    ``summary`` is the patrol summary (``score_patrol``'s dict). A no-op when the variable is
    unset or empty. Appends with one ``write`` call so parallel writers do not interleave lines.
    """
    path = os.environ.get(ENV, "").strip()
    if not path:
        return
    per_grid = {str(k): float(v) for k, v in (summary.get("coverage_per_grid") or {}).items()}
    min_grid = min(per_grid, key=per_grid.__getitem__) if per_grid else None
    min_ratio = per_grid[min_grid] if min_grid is not None else None
    line = {
        "test": test,
        "scenario": summary.get("scenario"),
        "coverage_ratio": summary.get("coverage_ratio"),
        "coverage_per_grid": per_grid,
        "threshold": threshold,
        "min_grid": min_grid,
        "min_ratio": min_ratio,
        "margin": round(min_ratio - threshold, 5) if min_ratio is not None else None,
        "frames_dropped": summary.get("frames_dropped"),
        "frames_requested": summary.get("frames_requested"),
        "wall_time_s": summary.get("wall_time_s"),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a", encoding="utf-8") as f:
        f.write(json.dumps(line, ensure_ascii=False) + "\n")
