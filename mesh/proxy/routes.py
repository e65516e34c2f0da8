"""HTTP routes of a split target: which rule a request takes, sans I/O.

Discovery hands the proxy a service's HTTPRoute rules, one ``Route`` per match,
already in Gateway API precedence order. ``select`` returns the first route
whose match the request meets:

- the path: ``prefix`` (element-wise: ``/api`` matches ``/api`` and
  ``/api/x``, not ``/apix``; ``/`` matches all), ``exact``, or ``regex`` (the
  whole path, query excluded);
- every header match (names lower case; values exact, or a regex over the
  whole value);
- the method, when one is given.

A pattern that does not compile never matches (the destination service refuses
such routes, so this only guards against a broken peer). Requests that match
no route get 404 from the caller; TCP connections, which have no request, take
``catch_all``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from mesh.proxy.discovery import Backend

__all__ = [
    "HeaderMatch",
    "PathKind",
    "Request",
    "Route",
    "RouteMatch",
    "catch_all",
    "matches",
    "select",
]


class Request(Protocol):
    """What routing reads of a request (``http1.RequestHead`` is one)."""

    @property
    def method(self) -> str: ...

    @property
    def path(self) -> str: ...

    @property
    def headers(self) -> tuple[tuple[bytes, bytes], ...]: ...


class PathKind(StrEnum):
    PREFIX = "prefix"
    EXACT = "exact"
    REGEX = "regex"


@dataclass(frozen=True, slots=True)
class HeaderMatch:
    name: bytes
    """Lower case."""
    value: str
    regex: bool = False


@dataclass(frozen=True, slots=True)
class RouteMatch:
    path_kind: PathKind = PathKind.PREFIX
    path: str = "/"
    headers: tuple[HeaderMatch, ...] = ()
    method: str = ""

    @property
    def matches_all(self) -> bool:
        return (
            self.path_kind is PathKind.PREFIX
            and self.path in ("", "/")
            and not self.headers
            and not self.method
        )


@dataclass(frozen=True, slots=True)
class Route:
    """One match of a rule and the weighted backends its requests go to."""

    match: RouteMatch
    backends: tuple[Backend, ...] = field(default=())


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _full(pattern: str, text: str) -> bool:
    compiled = _compiled(pattern)
    return compiled is not None and compiled.fullmatch(text) is not None


def _path_matches(match: RouteMatch, path: str) -> bool:
    path = path.split("?", 1)[0] or "/"
    if match.path_kind is PathKind.EXACT:
        return path == match.path
    if match.path_kind is PathKind.REGEX:
        return _full(match.path, path)
    prefix = match.path.rstrip("/")
    return not prefix or path == prefix or path.startswith(prefix + "/")


def _header_matches(want: HeaderMatch, headers: Iterable[tuple[bytes, bytes]]) -> bool:
    for name, raw in headers:
        if name != want.name:
            continue
        value = raw.decode("latin-1")
        if _full(want.value, value) if want.regex else value == want.value:
            return True
    return False


def matches(match: RouteMatch, request: Request) -> bool:
    """Whether ``request`` (its method, path and query, headers) meets ``match``."""
    if match.method and match.method != request.method.upper():
        return False
    if not _path_matches(match, request.path):
        return False
    return all(_header_matches(h, request.headers) for h in match.headers)


def select(routes: tuple[Route, ...], request: Request) -> Route | None:
    """The first route ``request`` meets, or ``None``."""
    for route in routes:
        if matches(route.match, request):
            return route
    return None


def catch_all(routes: tuple[Route, ...]) -> Route | None:
    """The first route every request meets (what a connection without a request takes)."""
    return next((r for r in routes if r.match.matches_all), None)
