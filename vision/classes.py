"""The four patrol classes. Their order is the model's class index order."""

from __future__ import annotations

PATROL_CLASSES: tuple[str, ...] = ("illegal_structure", "straw_burning", "illegal_dumping", "hazmat_fire")

CLASS_LABELS_ZH: dict[str, str] = {
    "illegal_structure": "违章建筑",
    "straw_burning": "秸秆焚烧",
    "illegal_dumping": "偷倒垃圾",
    "hazmat_fire": "危化品车辆火情",
}
