"""Write one bench script's own section of docs/benchmarks.md, leaving the others alone."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"


def section_heading(section: str) -> str:
    """The ``## ...`` heading a section starts with (ValueError naming the text otherwise)."""
    first = section.lstrip("\n").split("\n", 1)[0]
    if not first.startswith("## "):
        raise ValueError(f"a benchmarks.md section must start with a '## ' heading, got {first[:60]!r}")
    return first


def write_section(section: str, path: Path | None = None, heading: str | None = None) -> None:
    """Replace the section starting with ``heading`` (default: the section's own first line)
    in ``path`` (default docs/benchmarks.md), or append it; every other section is kept."""
    path = DOCS if path is None else path
    heading = section_heading(section) if heading is None else heading
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n\n"
    start = text.find(heading)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section.strip("\n") + "\n"
    else:
        end = text.find("\n## ", start + len(heading))
        text = text[:start] + section.strip("\n") + "\n" + (text[end:] if end >= 0 else "")
    path.write_text(text, encoding="utf-8")


def read_section(heading: str, path: Path | None = None) -> str | None:
    """The section starting with ``heading`` in ``path`` (default docs/benchmarks.md), or None."""
    path = DOCS if path is None else path
    if not path.exists():
        return None
    text = path.read_text(encoding="utf-8")
    start = text.find(heading)
    if start < 0:
        return None
    end = text.find("\n## ", start + len(heading))
    return text[start:end if end >= 0 else len(text)].rstrip("\n") + "\n"
