"""Where KommoClient's bearer token comes from: a long-lived token here, OAuth in crm.oauth."""

from __future__ import annotations

from typing import Protocol


class TokenProvider(Protocol):
    """Where the bearer token comes from: a long-lived token (StaticToken) or OAuth (crm.oauth)."""

    hint: str  # what a human should do after a 401, for the error message

    def access_token(self) -> str: ...

    def rejected(self, token: str) -> str | None:
        """Kommo answered 401 to `token`: a different token to try once more, or None."""
        ...


class StaticToken:
    """The long-lived token of a private integration (KOMMO_ACCESS_TOKEN): nothing to refresh."""

    hint = "check KOMMO_ACCESS_TOKEN"

    def __init__(self, token: str):
        self._token = token

    def __bool__(self) -> bool:
        return bool(self._token)

    def __repr__(self) -> str:
        return "StaticToken([redacted])"

    def access_token(self) -> str:
        return self._token

    def rejected(self, token: str) -> str | None:
        return None
