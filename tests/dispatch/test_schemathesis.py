"""Property-based run over the OpenAPI schema: no generated request (valid by the schema, or
a negative one) may produce a server error. Bounded examples so the suite stays fast.

Two runs: schemathesis's own cases with a token of the role that may call each operation;
and the same cases with one hostile value put into one body field or query parameter
(issue 13: NaN/Infinity/1e400, unpaired surrogates, NUL characters, years 1 and 9999,
digits like '²', nesting 100 000 levels deep), sent with a dispatcher's token, the
operation's own role and no token at all. Both also run on PostgreSQL when
``SKYGRID_TEST_PG_URL`` is set (NUL in any string answered 500 there)."""

from __future__ import annotations

import json
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import make_env

EXAMPLES = 6
HOSTILE_EXAMPLES = 8

#: the dispatch routers and the live module's HTTP routes (pages belong to their own suites)
MINE = ("/api/v1/incidents", "/api/v1/tickets", "/api/v1/grids", "/api/v1/departments", "/api/v1/workers",
        "/api/v1/routing", "/api/v1/workflow", "/api/v1/me", "/api/v1/stats", "/api/v1/evidence", "/open311/",
        "/healthz")
LIVE = ("/api/v1/telemetry", "/api/v1/plan", "/api/v1/drones", "/api/v1/live/drones", "/api/v1/live/config")


def _token_for(op) -> str:
    if "photos" in op.path:
        return "tok-worker1"
    if op.path in ("/api/v1/telemetry", "/api/v1/plan"):
        return "tok-operator"
    return "tok-dispatcher"


def _env(tmp_path_factory, template_db):
    url = os.environ.get("SKYGRID_TEST_PG_URL")
    if url and os.environ.get("SKYGRID_SCHEMATHESIS_PG", "1") != "0":
        from .test_postgres import _reset, pg_env

        _reset(url)
        return pg_env(url, tmp_path_factory.mktemp("stpg"))
    return make_env(tmp_path_factory.mktemp("st"), template_db)


@pytest.fixture(scope="module")
def api_env(tmp_path_factory, template_db):
    env = _env(tmp_path_factory, template_db)
    for i in range(3):  # some tickets and evidence to find
        env.post_incident(env.incident(f"seed-{i}", spot=i * 5, evidence=True))
    yield env
    env.app.state.engine.dispose()


def _operations(env, prefixes):
    schema = schemathesis.openapi.from_asgi("/openapi.json", env.app)
    return [op for op in (r.ok() for r in schema.get_all_operations()) if op.path.startswith(prefixes)]


def test_no_server_errors(api_env):
    operations = _operations(api_env, MINE)
    assert len(operations) >= 15
    seen: list[str] = []

    def run(op) -> None:
        token = _token_for(op)

        @given(case=op.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            response = case.call(headers={"Authorization": f"Bearer {token}"})
            assert response.status_code < 500, (case.method, case.formatted_path, case.body, response.text[:400])

        check()

    for op in operations:
        run(op)
        seen.append(f"{op.method.upper()} {op.path}")
    assert "POST /api/v1/incidents" in seen and "GET /open311/v2/requests.json" in seen


# -- hostile values ----------------------------------------------------------------------
#: JSON text for a body field; "<deep>" is replaced by 100 000 nested arrays
BODY_VALUES = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", '"\\ud800"', '"a\\udfffb"', '"a\\u0000b"',
               '"0001-01-01T00:00:00Z"', '"9999-12-31T23:59:59Z"', '"\u00b2"', "<deep>", "[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]",
               "9" * 5000, '"' + "x" * 300 + '"', "-1", "2147483648", "9223372036854775808", "null", "{}"]
#: query/path values (percent-encoded by the client)
QUERY_VALUES = ["nan", "NaN", "inf", "-Infinity", "1e400", "a\x00b", "\x00", "\u00b2", "\u0663", "1,\u00b2",
                "0001-01-01T00:00:00", "9999-12-31T23:59:59", "99999999999999999999999", "-1", "",
                "1e400,1e400,1e400,1e400", "nan,nan,nan,nan"]
DEEP = "[" * 100_000 + "]" * 100_000


def _hostile_request(case, draw):
    """(path, query, raw body or None, content-type) with one hostile value put in."""
    query = dict(case.query or {})
    path = case.formatted_path
    body = case.body if isinstance(case.body, dict) else None
    if case.method.upper() in ("POST", "PUT", "PATCH") and "photos" not in case.path and draw(st.booleans()):
        doc = dict(body or {})
        keys = sorted(doc) or ["value"]
        if "items" in doc and isinstance(doc["items"], list) and doc["items"] and isinstance(doc["items"][0], dict):
            inner = dict(doc["items"][0])
            key = draw(st.sampled_from(sorted(inner) or ["lat"]))
            inner[key] = "\x01HOSTILE\x01"
            doc["items"] = [inner, *doc["items"][1:]]
        else:
            doc[draw(st.sampled_from(keys + ["lat", "observed_at", "external_id"]))] = "\x01HOSTILE\x01"
        value = draw(st.sampled_from(BODY_VALUES))
        raw = json.dumps(doc).replace('"\\u0001HOSTILE\\u0001"', DEEP if value == "<deep>" else value)
        return path, query, raw.encode(), "application/json"
    params = [p.name for p in case.operation.query] or ["since", "service_request_id", "grid_id"]
    query[draw(st.sampled_from(params))] = draw(st.sampled_from(QUERY_VALUES))
    raw = None if body is None else json.dumps(body).encode()
    return path, query, raw, "application/json"


def test_no_server_errors_on_hostile_values(api_env):
    """Every operation, one hostile value at a time, as a dispatcher, as the operation's own
    role and anonymously: 4xx, never 5xx, and the error body is standard JSON."""
    operations = _operations(api_env, MINE + LIVE)
    assert {"/api/v1/telemetry", "/api/v1/plan"} <= {op.path for op in operations}
    client = api_env.client
    hits = 0

    def run(op) -> None:
        nonlocal hits
        tokens = sorted({"tok-dispatcher", _token_for(op), ""})

        @given(case=op.as_strategy(), data=st.data())
        @settings(max_examples=HOSTILE_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case, data):
            nonlocal hits
            path, query, raw, ctype = _hostile_request(case, data.draw)
            for token in tokens:
                headers = {"content-type": ctype} | ({"Authorization": f"Bearer {token}"} if token else {})
                r = client.request(case.method.upper(), path, params=query, content=raw, headers=headers)
                assert r.status_code < 500, (token, case.method, path, query, (raw or b"")[:300], r.text[:400])
                if r.status_code >= 400 and r.headers.get("content-type", "").startswith("application/json"):
                    json.loads(r.text, parse_constant=lambda c: pytest.fail(f"{c} in an error body"))
                hits += 1

        check()

    for op in operations:
        run(op)
    assert hits >= len(operations) * HOSTILE_EXAMPLES
