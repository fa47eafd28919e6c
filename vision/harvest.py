"""Turn the command room's verdicts into training data (the operator's feedback loop).

In the command room, 确认 and 标记误报 on a ticket's evidence are stored as ``verdict``
ticket events (``POST /api/v1/tickets/{id}/verdict``: verdict, the ticket's evidence id and
class, and the detection box in evidence-image pixels when the room sends it). This module
reads them from the dispatch database and writes a YOLO dataset:

- ``confirmed`` with a box: the evidence frame with one label (the ticket's class, the box);
- ``false_alarm``: the evidence frame with no label, a hard negative (whatever the detector
  fired on there is background);
- ``confirmed`` without a box cannot be a positive and is counted as skipped.

The latest verdict per ticket counts. Frames go to ``images/<split>`` named by ticket id
and evidence hash; ``harvest.jsonl`` keeps the provenance (ticket, verdict, class, box).
Fine-tune on the result with ``skygrid vision train --data OUT --from MODEL``.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from vision.classes import PATROL_CLASSES
from vision.dataset import write_data_yaml


@dataclass
class HarvestReport:
    """What :func:`harvest` wrote: positives, hard negatives and what was skipped (why -> count)."""

    positives: Counter = field(default_factory=Counter)  # class -> frames
    negatives: int = 0
    skipped: Counter = field(default_factory=Counter)


def harvest(database_url: str, evidence_dir: str | Path, out_dir: str | Path, split: str = "train") -> HarvestReport:
    """Export the verdicts in the dispatch database at ``database_url`` (evidence files under
    ``evidence_dir``) as a YOLO dataset in ``out_dir`` (merged with what is there)."""
    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import Session

    from dispatch.models import Evidence, TicketEvent

    out = Path(out_dir)
    img_dir, lbl_dir = out / "images" / split, out / "labels" / split
    img_dir.mkdir(parents=True, exist_ok=True)
    lbl_dir.mkdir(parents=True, exist_ok=True)
    report = HarvestReport()
    engine = create_engine(database_url)
    latest: dict[int, TicketEvent] = {}
    try:
        with Session(engine) as s:
            for ev in s.scalars(select(TicketEvent).where(TicketEvent.kind == "verdict").order_by(TicketEvent.id)):
                latest[ev.ticket_id] = ev
            with open(out / "harvest.jsonl", "a", encoding="utf-8") as manifest:
                for tid, ev in sorted(latest.items()):
                    d = ev.data or {}
                    verdict, cls, box = d.get("verdict"), d.get("class_name"), d.get("box")
                    evid = s.get(Evidence, d["evidence_id"]) if d.get("evidence_id") is not None else None
                    if evid is None:
                        report.skipped["no evidence image"] += 1
                        continue
                    src = Path(evidence_dir) / evid.path
                    if not src.is_file():
                        report.skipped["evidence file missing"] += 1
                        continue
                    if verdict == "confirmed" and (cls not in PATROL_CLASSES or not box):
                        report.skipped["confirmed without box" if box is None else "unknown class"] += 1
                        continue
                    name = f"ticket{tid}_{evid.sha256[:12]}"
                    label = ""
                    if verdict == "confirmed":
                        w, h = float(evid.width), float(evid.height)
                        x1, y1, x2, y2 = (float(v) for v in box)
                        x1, x2 = sorted((min(max(x1, 0.0), w), min(max(x2, 0.0), w)))
                        y1, y2 = sorted((min(max(y1, 0.0), h), min(max(y2, 0.0), h)))
                        if x2 - x1 < 1 or y2 - y1 < 1:
                            report.skipped["box outside the image"] += 1
                            continue
                        label = (f"{PATROL_CLASSES.index(cls)} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} "
                                 f"{(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}\n")
                        report.positives[cls] += 1
                    elif verdict == "false_alarm":
                        report.negatives += 1
                    else:
                        report.skipped[f"verdict {verdict!r}"] += 1
                        continue
                    shutil.copyfile(src, img_dir / f"{name}{src.suffix}")
                    (lbl_dir / f"{name}.txt").write_text(label, encoding="utf-8")
                    manifest.write(json.dumps({"image": f"images/{split}/{name}{src.suffix}", "ticket_id": tid,
                                               "verdict": verdict, "class_name": cls, "box": box,
                                               "evidence_sha256": evid.sha256, "at": ev.at.isoformat()}) + "\n")
    finally:
        engine.dispose()
    splits = tuple(sp for sp in ("train", "val", "test") if (out / "images" / sp).is_dir())
    y = write_data_yaml(out, splits)
    if "val" not in splits:  # ultralytics needs a val split: validate on what was harvested
        import yaml

        d = yaml.safe_load(y.read_text(encoding="utf-8"))
        d["val"] = f"images/{splits[0]}"
        y.write_text(yaml.safe_dump(d, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return report
