"""The deployment files (deploy/) name what the app really reads and run real commands.

No container runtime or systemd runs here, so these checks stand in for `docker compose up`:
the compose file parses and wires API + PostgreSQL with healthchecks and an evidence volume,
every SKYGRID_* name in it is one the code reads, the API command parses with the real CLI,
the systemd units' commands answer `--help`, and `systemd-analyze verify` accepts the units
(with the venv path swapped in) where that tool exists.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import make_url

from dispatch.core.config import Settings
from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
UNITS = DEPLOY / "systemd"
SCRIPT = "/opt/skygrid/.venv/bin/skygrid"  # where the units expect the console script
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def known_env_names() -> set[str]:
    """SKYGRID_* names the code reads: the Settings fields plus literal names in the sources."""
    names = {f"SKYGRID_{f.upper()}" for f in Settings.model_fields}
    for pkg in ("dispatch", "skygrid", "geo", "flight"):
        for path in (ROOT / pkg).rglob("*.py"):
            names |= set(re.findall(r"[\"'](SKYGRID_[A-Z][A-Z0-9_]*)[\"']", path.read_text(encoding="utf-8")))
    return names


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:-default} and ${NAME:?error} against ``env``."""

    def sub(m: re.Match) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if name in env and env[name]:
            return env[name]
        if op == ":?":
            raise KeyError(f"{name}: {arg}")
        return arg or ""

    return re.sub(r"\$\{([A-Z_][A-Z0-9_]*)(?:(:[-?])([^}]*))?\}", sub, value)


def unit(path: Path) -> dict[str, list[str]]:
    """A systemd unit as ``Section.Key -> [values]`` (keys may repeat)."""
    out: dict[str, list[str]] = {}
    section = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return out


def cli(argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "skygrid", *argv], capture_output=True, text=True,
                          timeout=timeout, env=ENV, cwd=ROOT)


def test_compose_wires_api_and_postgres_with_healthchecks():
    c = compose()
    assert set(c["services"]) == {"api", "db"}
    db, api = c["services"]["db"], c["services"]["api"]
    assert db["image"].startswith("postgres:")
    assert api["depends_on"]["db"]["condition"] == "service_healthy"
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert "/healthz" in " ".join(api["healthcheck"]["test"])
    assert (ROOT / api["build"]["context"].replace("..", ".", 1) / api["build"]["dockerfile"]).resolve() == \
        (DEPLOY / "Dockerfile").resolve()
    # named volumes for the database and the evidence images, declared at the top level
    assert {"pgdata", "evidence"} <= set(c["volumes"])
    assert any(v.startswith("pgdata:/var/lib/postgresql/data") for v in db["volumes"])
    evidence_dir = api["environment"]["SKYGRID_EVIDENCE_DIR"]
    assert f"evidence:{evidence_dir}" in api["volumes"]


def test_compose_names_only_settings_the_app_reads_and_keeps_secrets_out():
    api = compose()["services"]["api"]
    env = api["environment"]
    known = known_env_names()
    unknown = sorted(n for n in env if n.startswith("SKYGRID_") and n not in known)
    assert not unknown, f"compose sets variables the app never reads: {unknown}"
    # secrets are required from deploy/.env, never written here
    assert "${POSTGRES_PASSWORD:?" in compose()["services"]["db"]["environment"]["POSTGRES_PASSWORD"]
    assert "${SKYGRID_AUDIT_KEY:?" in env["SKYGRID_AUDIT_KEY"]
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate(env["SKYGRID_DATABASE_URL"], {})
    # with the secrets filled in, the settings the API builds point at the db service on PostgreSQL
    filled = {k: interpolate(str(v), {"POSTGRES_PASSWORD": "s3cret", "SKYGRID_AUDIT_KEY": "k" * 32})
              for k, v in env.items()}
    st = Settings.from_env(filled)
    url = make_url(st.database_url)
    assert (url.drivername, url.host, url.password) == ("postgresql+psycopg", "db", "s3cret")
    assert st.evidence_dir == env["SKYGRID_EVIDENCE_DIR"] and st.grids_crs == "gcj02"
    assert st.grids_file == "/etc/skygrid/grids.geojson"
    assert any(v.endswith(":/etc/skygrid/grids.geojson:ro") for v in api["volumes"])


def test_env_example_names_only_known_variables():
    names = re.findall(r"^#?\s*(SKYGRID_[A-Z0-9_]+)=", (DEPLOY / "env.example").read_text(encoding="utf-8"), re.M)
    assert "SKYGRID_DATABASE_URL" in names and "SKYGRID_AUDIT_KEY" in names
    assert not sorted(set(names) - known_env_names() - {"SKYGRID_GRIDS", "SKYGRID_PORT"})
    # the two compose-only names are used by compose.yaml itself
    text = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
    assert "${SKYGRID_GRIDS:-" in text and "${SKYGRID_PORT:-" in text


def test_api_command_is_the_real_cli_and_matches_the_image():
    from skygrid.cli import build_parser

    command = compose()["services"]["api"]["command"]
    assert command[:2] == ["skygrid", "serve"]
    args = build_parser().parse_args(command[1:])
    assert (args.host, args.port) == ("0.0.0.0", 8000)
    cmd = re.search(r"^CMD (\[.*\])$", (DEPLOY / "Dockerfile").read_text(encoding="utf-8"), re.M)
    assert cmd and yaml.safe_load(cmd.group(1)) == command
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    assert any(d.startswith("psycopg") for d in extras["postgres"])  # what the image installs


@pytest.mark.parametrize("name", ["skygrid.service", "skygrid-audit-checkpoint.service"])
def test_unit_commands_are_real_cli_commands(name):
    u = unit(UNITS / name)
    assert u["Service.EnvironmentFile"] == ["/etc/skygrid/skygrid.env"]
    assert "postgresql.service" in u["Unit.After"][0]
    commands = u.get("Service.ExecStartPre", []) + u["Service.ExecStart"]
    for line in commands:
        exe, *argv = line.split()
        assert exe == SCRIPT, line
        r = cli([*argv, "--help"])
        assert r.returncode == 0, f"{line} --help: {r.stderr}"
    if name == "skygrid.service":
        assert "serve" in u["Service.ExecStart"][0] and u["Service.ExecStartPre"][0].endswith("serve migrate")
        assert u["Service.StateDirectory"] == ["skygrid"]


def test_systemd_analyze_accepts_the_units(tmp_path):
    tool = shutil.which("systemd-analyze")
    if not tool:
        pytest.skip("systemd-analyze not installed")
    script = Path(sys.prefix) / "bin" / "skygrid"
    if not script.exists():
        pytest.skip(f"no console script at {script}")
    for path in UNITS.iterdir():
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8").replace(SCRIPT, str(script)),
                                          encoding="utf-8")
    r = subprocess.run([tool, "verify", "--man=no", *sorted(str(p) for p in tmp_path.iterdir())],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    # and it does catch a broken unit (the check can fail)
    bad = tmp_path / "skygrid.service"
    bad.write_text(bad.read_text(encoding="utf-8").replace(str(script), "/nonexistent/skygrid"), encoding="utf-8")
    assert subprocess.run([tool, "verify", "--man=no", str(bad)], capture_output=True, timeout=60).returncode != 0


def test_serve_migrate_brings_an_empty_database_to_head(tmp_path):
    from dispatch.core.db import head_revision

    url = f"sqlite:///{tmp_path / 'd.db'}"
    assert cli(["serve", "migrate", "--db", url, "--check"]).returncode == 1
    r = cli(["serve", "migrate", "--db", url])
    assert r.returncode == 0, r.stderr
    assert f"-> {head_revision()}" in r.stdout
    assert cli(["serve", "migrate", "--db", url, "--check"]).returncode == 0


def test_healthz_fails_while_the_database_is_down(tmp_path):
    from fastapi.testclient import TestClient
    from sqlalchemy import create_engine

    from dispatch.app import create_app

    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'h.db'}", evidence_dir=str(tmp_path / "ev"),
                              sla_background=False))
    with TestClient(app) as client:
        assert client.get("/healthz").json()["database"] == "ok"
        # a PostgreSQL nobody listens on: connection refused at once
        app.state.engine = create_engine("postgresql+psycopg://x@127.0.0.1:9/x", pool_pre_ping=True)
        r = client.get("/healthz")
        assert r.status_code == 503 and r.json() == {"ok": False, "database": "unreachable"}
