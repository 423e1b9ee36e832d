"""FastAPI dependencies: the app's ``ServeState`` and the bearer-token checks."""

from __future__ import annotations

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from learnops.serve.state import ServeState

__all__ = ["get_state", "require_admin", "require_client"]

_bearer = HTTPBearer(auto_error=False)


async def get_state(request: Request) -> ServeState:
    """The ``ServeState`` that ``create_app`` stored on ``app.state.serve``."""
    return request.app.state.serve


def _unauthorized() -> HTTPException:
    return HTTPException(401, "missing or invalid token", headers={"WWW-Authenticate": "Bearer"})


def _role(state: ServeState, creds: HTTPAuthorizationCredentials | None) -> str | None:
    return state.tokens.role(creds.credentials if creds is not None else None)


async def require_admin(
    state: ServeState = Depends(get_state),
    creds: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> None:
    """401 without a known token, 403 for a non-admin one."""
    role = _role(state, creds)
    if role is None:
        raise _unauthorized()
    if role != "admin":
        raise HTTPException(403, "admin token required")


async def require_client(
    state: ServeState = Depends(get_state),
    creds: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> None:
    """401 without a known token, but only when client tokens are configured."""
    if state.tokens.clients_need_token and _role(state, creds) is None:
        raise _unauthorized()
