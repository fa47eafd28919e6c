"""The pages served by the dispatch API: the command room (``/``), the grid worker's phone
page (``/worker``), the operator view (``/operator``), the command room's statistics
(``/stats``), printable ticket sheets (``/print?id=1,2``), patrol replay from a flight log
(``/replay``) and the 飞手's planning page (``/planner``), plus their static files under
``/static/web`` (Leaflet is vendored in ``static/vendor/leaflet``; nothing comes from a CDN).

The pages are static HTML + JavaScript talking to the same HTTP API as every other client;
they log in with a token once (login box, a one-time ``/login?code=`` link, or ``?token=`` which
the script removes from the address at once) and then hold an HttpOnly session cookie.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

STATIC_DIR = Path(__file__).resolve().parent / "static"
PAGES = {"/": "index.html", "/worker": "worker.html", "/operator": "operator.html", "/stats": "stats.html",
         "/print": "print.html", "/replay": "replay.html", "/planner": "planner.html"}

__all__ = ["install", "STATIC_DIR", "PAGES"]


def install(app: Any) -> None:
    """Mount ``/static/web`` and the three page routes on ``app``."""
    from fastapi.responses import FileResponse
    from fastapi.staticfiles import StaticFiles

    app.mount("/static/web", StaticFiles(directory=STATIC_DIR), name="web-static")

    def page_route(filename: str) -> Any:
        async def page() -> FileResponse:
            # no-cache: a deployment upgrade reaches every screen on its next load
            return FileResponse(STATIC_DIR / filename, media_type="text/html; charset=utf-8",
                                headers={"Cache-Control": "no-cache"})

        page.__name__ = "page_" + filename.split(".")[0]
        return page

    for path, filename in PAGES.items():
        app.add_api_route(path, page_route(filename), methods=["GET"], include_in_schema=False)
