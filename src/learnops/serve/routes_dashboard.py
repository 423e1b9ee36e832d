"""The operations dashboard: ``GET /dashboard`` (one HTML page, its script and style shipped in
``learnops/serve/static/``, no build step, nothing from a CDN) and its data,
``GET /api/mlops/dashboard`` (read-only JSON, see :mod:`learnops.serve.dashboard`).

The page itself holds no data and no secret; its script asks for a token when the data
endpoint answers 401, keeps it in the tab's ``sessionStorage`` and sends it as
``Authorization: Bearer …`` (never in the URL). The data endpoint is open when no token is
configured, and otherwise accepts a client or an admin token.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from learnops.serve.dashboard import DashboardCache, dashboard_payload
from learnops.serve.deps import get_state
from learnops.serve.state import ServeState

__all__ = ["require_viewer", "router"]

router = APIRouter()
_bearer = HTTPBearer(auto_error=False)

#: The page's files and their media types (nothing else is served from ``static/``).
STATIC = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
#: Only the page's own script, style and data: no inline script, no other origin.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@cache
def _asset(name: str) -> bytes:
    return resources.files("learnops.serve").joinpath("static", name).read_bytes()


async def require_viewer(
    state: ServeState = Depends(get_state),
    creds: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> None:
    """401 without a known client or admin token, when any token is configured."""
    tokens = state.tokens
    if not (tokens.admin or tokens.user):
        return
    if tokens.role(creds.credentials if creds is not None else None) is None:
        raise HTTPException(401, "missing or invalid token", headers={"WWW-Authenticate": "Bearer"})


@router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
def dashboard_page() -> HTMLResponse:
    """The dashboard page (static: the data comes from /api/mlops/dashboard)."""
    return HTMLResponse(_asset("dashboard.html"), headers=_HEADERS)


@router.get("/dashboard/static/{name}", include_in_schema=False)
def dashboard_asset(name: str) -> Response:
    """The page's script and style."""
    if name not in STATIC:
        raise HTTPException(404, "not found")
    return Response(_asset(name), media_type=STATIC[name], headers=_HEADERS)


def _cache(request: Request) -> DashboardCache:
    app_state = request.app.state
    got = getattr(app_state, "dashboard", None)
    if got is None:
        got = app_state.dashboard = DashboardCache()
    return got


@router.get("/api/mlops/dashboard", dependencies=[Depends(require_viewer)])
def dashboard_data(
    request: Request,
    window: float = Query(30.0, ge=1, le=1440, description="minutes of history"),
    state: ServeState = Depends(get_state),
) -> JSONResponse:
    """Everything the dashboard shows, as one read-only JSON document: decisions, ML usage and
    latency over the last ``window`` minutes, outcomes by arm with learner-level CIs, the
    running experiment, drift, active alerts and the production model versions. No learner
    ids. Open without configured tokens, else a client or admin token is needed."""
    payload = dashboard_payload(state, _cache(request), float(window))
    return JSONResponse(payload, headers={"Cache-Control": "no-store"})
