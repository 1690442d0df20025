"""Query strings: a parameter the endpoint does not declare answers 400 ``unknown_parameter``,
so that a typo (``?created_after=``) never widens a result.

Every ``/v1`` router uses ``StrictQueryRoute``: the names a route takes are read once, from
its dependencies, when FastAPI builds its handler; a request without a query string (the
ingest hot path) costs one lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from .errors import ApiError

MAX_NAMED = 5  # unknown names quoted in one message
MAX_NAME_CHARS = 64  # of each quoted name


def declared_query(dependant: Dependant) -> frozenset[str]:
    """The query parameter names a route takes, its dependencies' included."""
    names: set[str] = set()
    pending = [dependant]
    while pending:
        current = pending.pop()
        names.update(field.alias for field in current.query_params)
        pending.extend(current.dependencies)
    return frozenset(names)


def unknown_parameters(given: Iterable[str], known: frozenset[str]) -> list[str]:
    """The names in ``given`` that are not in ``known``, each once, sorted."""
    return sorted(set(given) - known)


def unknown_message(unknown: list[str], known: frozenset[str]) -> str:
    quoted = ", ".join(repr(name[:MAX_NAME_CHARS]) for name in unknown[:MAX_NAMED])
    more = f" and {len(unknown) - MAX_NAMED} more" if len(unknown) > MAX_NAMED else ""
    takes = ("this endpoint takes: " + ", ".join(sorted(known)) if known
             else "this endpoint takes no query parameters")
    noun = "parameter" if len(unknown) == 1 else "parameters"
    return f"unknown query {noun} {quoted}{more}; {takes}"


class StrictQueryRoute(APIRoute):
    """An ``APIRoute`` that refuses query parameters it does not declare."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        known = declared_query(self.dependant)

        async def strict_handler(request: Request) -> Response:
            if request.scope["query_string"]:
                unknown = unknown_parameters(request.query_params.keys(), known)
                if unknown:
                    raise ApiError(400, "unknown_parameter", unknown_message(unknown, known))
            return await handler(request)

        return strict_handler
