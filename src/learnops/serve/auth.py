"""Bearer tokens: configured as sha256 hashes, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable
from dataclasses import dataclass

from learnops.errors import LearnopsError

__all__ = ["ADMIN_ENV", "USER_ENV", "TokenConfigError", "Tokens", "hash_token"]

#: Comma-separated sha256 hex digests of the admin tokens.
ADMIN_ENV = "LEARNOPS_ADMIN_TOKENS"
#: Comma-separated sha256 hex digests of the non-admin (client) tokens.
USER_ENV = "LEARNOPS_TOKENS"


def hash_token(token: str) -> str:
    """The sha256 hex digest under which a token is configured."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenConfigError(LearnopsError, ValueError):
    """A token variable holds something other than sha256 hex digests (e.g. a clear token)."""


#: How to make a token hash (printed with a malformed token variable).
HASH_HOWTO = (
    ".venv/bin/python -c \"from learnops.serve import hash_token; print(hash_token('YOUR-TOKEN'))\""
)


def _parse(value: str | None, env: str = ADMIN_ENV) -> tuple[str, ...]:
    out = []
    for n, part in enumerate((value or "").split(","), 1):
        h = part.strip().lower()
        if not h:
            continue
        if len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
            # never echo the value: it is probably a clear-text token
            raise TokenConfigError(
                f"{env}: entry {n} is not a token hash: the variable holds comma-separated "
                f"SHA-256 hashes of the tokens (64 hex characters, sha256 of the token), never "
                f"the tokens themselves; make one with {HASH_HOWTO}"
            )
        out.append(h)
    return tuple(out)


@dataclass(frozen=True)
class Tokens:
    """The accepted token hashes: admins may use every endpoint, users only the client ones."""

    admin: tuple[str, ...] = ()
    user: tuple[str, ...] = ()

    @classmethod
    def from_env(cls) -> Tokens:
        """Tokens from env ``LEARNOPS_ADMIN_TOKENS`` and ``LEARNOPS_TOKENS``."""
        return cls(
            admin=_parse(os.environ.get(ADMIN_ENV), ADMIN_ENV),
            user=_parse(os.environ.get(USER_ENV), USER_ENV),
        )

    @classmethod
    def of(cls, admin: Iterable[str] = (), user: Iterable[str] = ()) -> Tokens:
        """Tokens from clear-text tokens (tests, scripts)."""
        return cls(admin=tuple(map(hash_token, admin)), user=tuple(map(hash_token, user)))

    @property
    def clients_need_token(self) -> bool:
        """True when client tokens are configured: /decide and /outcomes then need one."""
        return bool(self.user)

    def role(self, token: str | None) -> str | None:
        """``"admin"``, ``"user"`` or None (unknown token); every hash is compared."""
        if not token:
            return None
        digest = hash_token(token)
        is_admin = _matches(digest, self.admin)
        is_user = _matches(digest, self.user)
        return "admin" if is_admin else "user" if is_user else None


def _matches(digest: str, hashes: tuple[str, ...]) -> bool:
    found = False
    for h in hashes:  # no early exit: timing does not reveal which hash matched
        found |= hmac.compare_digest(digest, h)
    return found
