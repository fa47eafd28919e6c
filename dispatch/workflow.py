"""The ticket workflow as a state machine defined by data (``defaults/workflow.yaml``).

Pure lookups: which actions a state allows, where each leads, who may take it. The
service layer (:mod:`dispatch.service`) applies transitions and records them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

WORKFLOW_FILE = Path(__file__).resolve().parent / "defaults" / "workflow.yaml"


@dataclass(frozen=True)
class State:
    id: str
    label: str
    stage: str | None  # SLA stage running in this state
    terminal: bool
    open311: str


@dataclass(frozen=True)
class Action:
    id: str
    label: str
    sources: tuple[str, ...]
    target: str
    roles: tuple[str, ...]
    requires: tuple[str, ...] = ()  # "photo" and/or "score", see REQUIREMENTS


@dataclass(frozen=True)
class Workflow:
    states: dict[str, State]
    actions: dict[str, Action]
    initial: str

    def allowed(self, status: str, role: str | None = None) -> list[str]:
        """Actions possible from ``status`` (for ``role`` when given), in file order."""
        return [
            a.id for a in self.actions.values()
            if status in a.sources and (role is None or role in a.roles)
        ]

    def terminal_states(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.states.values() if s.terminal)


class IllegalTransition(Exception):
    """An action not allowed from the ticket's current state (HTTP 409)."""

    def __init__(self, action: str, status: str, allowed: list[str]) -> None:
        self.action, self.status, self.allowed = action, status, allowed
        super().__init__(
            f"action {action!r} is not allowed while the ticket is {status!r}; "
            f"allowed: {', '.join(allowed) or 'none'}"
        )


#: what an action may require before it applies (``requires:`` in the workflow file)
REQUIREMENTS = ("photo", "score")


def parse_workflow(data: dict) -> Workflow:
    """Build and check a workflow from its data (every referenced state must exist)."""
    states = {
        k: State(k, v["label"], v.get("stage"), bool(v.get("terminal")), v.get("open311", "open"))
        for k, v in data["states"].items()
    }
    actions = {
        k: Action(k, v["label"], tuple(v["from"]), v["to"], tuple(v["roles"]), tuple(v.get("requires") or ()))
        for k, v in data["actions"].items()
    }
    for a in actions.values():
        for r in a.requires:
            if r not in REQUIREMENTS:
                raise ValueError(f"workflow: action {a.id!r} requires unknown {r!r}; known: {', '.join(REQUIREMENTS)}")
        for s in (*a.sources, a.target):
            if s not in states:
                raise ValueError(f"workflow: action {a.id!r} names unknown state {s!r}")
    if data["initial"] not in states:
        raise ValueError(f"workflow: initial state {data['initial']!r} unknown")
    return Workflow(states=states, actions=actions, initial=data["initial"])


@lru_cache(maxsize=1)
def default_workflow() -> Workflow:
    return parse_workflow(yaml.safe_load(WORKFLOW_FILE.read_text(encoding="utf-8")))


def next_state(wf: Workflow, status: str, action: str) -> str:
    """The state ``action`` leads to from ``status``; raise :class:`IllegalTransition`."""
    a = wf.actions.get(action)
    if a is None or status not in a.sources:
        raise IllegalTransition(action, status, wf.allowed(status))
    return a.target
