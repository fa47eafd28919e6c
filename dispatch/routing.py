"""Routing rules as data: patrol class -> lead and co-departments, priority, SLA clocks.

Loaded from a YAML file the county edits (default: ``dispatch/defaults/routing.yaml``) and
validated at load; every error names the file, line and field, e.g.
``routing.yaml:41: classes.straw_burning.lead: unknown department 'ecolgy'``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, ValidationError

from vision.classes import PATROL_CLASSES

DEFAULT_ROUTING = Path(__file__).resolve().parent / "defaults" / "routing.yaml"
STAGES: tuple[str, ...] = ("sign", "dispatch", "on_site", "handle", "supervise")
AREA_TYPES: tuple[str, ...] = ("town", "countryside")


class RoutingError(ValueError):
    """A routing file problem located at file:line and a dotted field path."""

    def __init__(self, file: str, line: int | None, field: str, message: str) -> None:
        self.file, self.line, self.field, self.message = file, line, field, message
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChecklistItem(_Strict):
    id: str = Field(min_length=1)
    text: str = Field(min_length=1)


class DepartmentSpec(_Strict):
    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    name: str = Field(min_length=1)
    checklist: list[ChecklistItem] = Field(default_factory=list)


class SlaSpec(_Strict):
    """Seconds allowed per stage; on_site by grid area_type."""

    sign_s: PositiveFloat
    dispatch_s: PositiveFloat
    on_site_s: dict[str, PositiveFloat]
    handle_s: PositiveFloat
    supervise_s: PositiveFloat


class SlaOverride(_Strict):
    sign_s: PositiveFloat | None = None
    dispatch_s: PositiveFloat | None = None
    on_site_s: dict[str, PositiveFloat] | None = None
    handle_s: PositiveFloat | None = None
    supervise_s: PositiveFloat | None = None


class ClassRule(_Strict):
    label: str = Field(min_length=1)
    priority: int = Field(ge=0, le=9)
    lead: str
    co: list[str] = Field(default_factory=list)
    sla: SlaOverride | None = None


class RoutingFile(_Strict):
    version: int = 1
    tiers: list[str] = Field(default_factory=lambda: ["village", "town", "district"], min_length=1)
    sla: SlaSpec
    departments: list[DepartmentSpec] = Field(min_length=1)
    classes: dict[str, ClassRule]


@dataclass(frozen=True)
class Routing:
    """Validated routing rules with the lookups the workflow needs."""

    spec: RoutingFile
    source: str

    @cached_property
    def departments(self) -> dict[str, DepartmentSpec]:
        return {d.id: d for d in self.spec.departments}

    @property
    def tiers(self) -> list[str]:
        return self.spec.tiers

    def rule(self, class_name: str) -> ClassRule:
        return self.spec.classes[class_name]

    def department_ids(self, class_name: str) -> list[str]:
        """Lead first, then co-departments."""
        r = self.rule(class_name)
        return [r.lead, *[d for d in r.co if d != r.lead]]

    def checklist(self, class_name: str) -> list[dict[str, Any]]:
        """The joint inspection checklist: every department's items in routing order, an
        item shared by several departments (same id) listed once with all of them."""
        merged: dict[str, dict[str, Any]] = {}
        for dep_id in self.department_ids(class_name):
            for item in self.departments[dep_id].checklist:
                entry = merged.setdefault(item.id, {"id": item.id, "text": item.text, "departments": []})
                if dep_id not in entry["departments"]:
                    entry["departments"].append(dep_id)
        return list(merged.values())

    def stage_seconds(self, class_name: str, stage: str, area_type: str) -> float:
        """The SLA clock (seconds) for ``stage`` of a ticket of ``class_name`` in such an area."""
        base = self.spec.sla
        override = self.rule(class_name).sla
        key = f"{stage}_s"
        value = getattr(override, key, None) if override else None
        if value is None:
            value = getattr(base, key)
        if stage == "on_site":
            return float(value.get(area_type, value.get("countryside", max(value.values()))))
        return float(value)

    def next_tier(self, tier: str) -> str | None:
        tiers = self.spec.tiers
        i = tiers.index(tier) if tier in tiers else 0
        return tiers[i + 1] if i + 1 < len(tiers) else None


# ---------------------------------------------------------------- loading with located errors


def _marks(node: yaml.Node, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """Map every dotted path in a composed YAML tree to its 1-based line."""
    out = {} if out is None else out
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value
            out[(*path, key)] = k.start_mark.line + 1
            _marks(v, (*path, key), out)
            out[(*path, key)] = k.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _marks(v, (*path, i), out)
    return out


def _line(marks: dict[tuple, int], loc: tuple) -> int | None:
    loc = tuple(str(x) if not isinstance(x, int) else x for x in loc)
    for n in range(len(loc), -1, -1):
        if loc[:n] in marks:
            return marks[loc[:n]]
    return None


def _dotted(loc: tuple) -> str:
    return ".".join(str(x) for x in loc)


def parse_routing(text: str, source: str = "routing.yaml") -> Routing:
    """Parse and validate routing YAML text; raise :class:`RoutingError` located in ``source``."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 10x faster
    try:
        node = yaml.compose(text, Loader=loader)
        data = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise RoutingError(source, mark.line + 1 if mark else None, "", f"YAML syntax: {e.problem}") from e
    if not isinstance(data, dict) or node is None:
        raise RoutingError(source, 1, "", "expected a mapping with sla, departments, classes")
    marks = _marks(node)
    try:
        spec = RoutingFile.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(err["loc"])
        raise RoutingError(source, _line(marks, loc), _dotted(loc), err["msg"]) from e
    _check_semantics(spec, marks, source)
    return Routing(spec=spec, source=source)


def _check_semantics(spec: RoutingFile, marks: dict[tuple, int], source: str) -> None:
    def fail(loc: tuple, msg: str) -> None:
        raise RoutingError(source, _line(marks, loc), _dotted(loc), msg)

    seen: set[str] = set()
    for i, d in enumerate(spec.departments):
        if d.id in seen:
            fail(("departments", i, "id"), f"duplicate department id {d.id!r}")
        seen.add(d.id)
    if len(set(spec.tiers)) != len(spec.tiers):
        fail(("tiers",), "tiers must be distinct")
    for area in AREA_TYPES:
        if area not in spec.sla.on_site_s:
            fail(("sla", "on_site_s"), f"missing area type {area!r} (need {', '.join(AREA_TYPES)})")
    for name, rule in spec.classes.items():
        if name not in PATROL_CLASSES:
            fail(("classes", name), f"unknown class {name!r}; expected one of {', '.join(PATROL_CLASSES)}")
        if rule.lead not in seen:
            fail(("classes", name, "lead"), f"unknown department {rule.lead!r}")
        for j, co in enumerate(rule.co):
            if co not in seen:
                fail(("classes", name, "co", j), f"unknown department {co!r}")
    for name in PATROL_CLASSES:
        if name not in spec.classes:
            fail(("classes",), f"missing rule for class {name!r}")


def load_routing(path: str | Path | None = None) -> Routing:
    """Load a routing file (None -> the packaged default)."""
    p = Path(path) if path else DEFAULT_ROUTING
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise RoutingError(str(p), None, "", f"cannot read: {e.strerror}") from e
    return parse_routing(text, str(p))
