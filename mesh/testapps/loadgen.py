"""What a load run is and what it reports, as pure functions (no I/O, no clock).

A run is ``count`` GET requests to one URL. With ``rate > 0`` the schedule is open
loop: request ``i`` is due ``i / rate`` seconds after the run starts, whatever became of
earlier requests. With ``rate == 0`` requests go as fast as ``concurrency`` slots allow.
Percentiles are nearest-rank over the latencies of requests that got a status.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypedDict
from urllib.parse import urlsplit

from mesh.testapps.settings import SETTINGS, Settings

RESPONDER_FIELDS = ("pod", "namespace", "cluster", "client_id")


class Responder(TypedDict):
    pod: str | None
    namespace: str | None
    cluster: str | None
    client_id: str | None
    remote: str | None  # the peer address the server saw


class Record(TypedDict):
    i: int
    status: int | None
    latency_ms: float | None
    responder: Responder | None
    error: str | None


class Summary(TypedDict):
    count: int
    ok: int
    errors: int
    p50_ms: float | None
    p99_ms: float | None
    duration_s: float


class RunResult(TypedDict):
    records: list[Record]
    summary: Summary


class SpecError(ValueError):
    """A run request that cannot be accepted; the text tells the caller what to fix."""


@dataclass(frozen=True)
class RunSpec:
    url: str
    count: int
    rate: float = 0.0
    concurrency: int = SETTINGS.default_concurrency
    timeout: float = SETTINGS.default_request_timeout
    headers: Mapping[str, str] = field(default_factory=dict)


_SPEC_FIELDS = frozenset({"url", "count", "rate", "concurrency", "timeout", "headers"})


def parse_run_spec(body: object, settings: Settings = SETTINGS) -> RunSpec:
    """Validate a decoded ``POST /run`` body; raise SpecError naming the first problem."""
    if not isinstance(body, dict):
        raise SpecError("body must be a JSON object")
    unknown = sorted(set(body) - _SPEC_FIELDS)
    if unknown:
        raise SpecError(f"unknown field(s): {', '.join(map(str, unknown))}")

    url = body.get("url")
    if not isinstance(url, str):
        raise SpecError("url must be a string")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SpecError(f"url must be an absolute http(s) URL, not {url!r}")

    count = _integer(body, "count", None, 1, settings.max_count)
    rate = _number(body, "rate", 0.0, 0.0, settings.max_rate, allow_zero=True)
    concurrency = _integer(
        body, "concurrency", settings.default_concurrency, 1, settings.max_concurrency
    )
    timeout = _number(
        body, "timeout", settings.default_request_timeout, 0.0, settings.max_request_timeout
    )
    if rate > 0 and (count - 1) / rate > settings.max_run_duration:
        raise SpecError(
            f"count / rate must fit in {settings.max_run_duration:g} s; "
            f"{count} at {rate:g}/s would take {(count - 1) / rate:g} s"
        )

    headers = body.get("headers", {})
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise SpecError("headers must be an object of string values")
    return RunSpec(
        url=url,
        count=count,
        rate=rate,
        concurrency=concurrency,
        timeout=timeout,
        headers=dict(headers),
    )


def _integer(body: dict[str, object], name: str, default: int | None, low: int, high: int) -> int:
    value = body.get(name, default)
    if value is None:
        raise SpecError(f"{name} is required")
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{name} must be an integer")
    if not low <= value <= high:
        raise SpecError(f"{name} must be within {low}-{high}, not {value}")
    return value


def _number(
    body: dict[str, object],
    name: str,
    default: float,
    low: float,
    high: float,
    *,
    allow_zero: bool = False,
) -> float:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(f"{name} must be a number")
    number = float(value)
    in_range = (low <= number if allow_zero else low < number) and number <= high
    if not math.isfinite(number) or not in_range:
        lower = f">= {low:g}" if allow_zero else f"> {low:g}"
        raise SpecError(f"{name} must be {lower} and <= {high:g}, not {value}")
    return number


def start_offset(i: int, rate: float) -> float:
    """Seconds after the run's start at which request ``i`` is due (0 when unpaced)."""
    return i / rate if rate > 0 else 0.0


def schedule(count: int, rate: float) -> list[float]:
    """Every request's due offset, in order."""
    return [start_offset(i, rate) for i in range(count)]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile (0 < q <= 100); ``None`` for no values."""
    if not 0 < q <= 100:
        raise ValueError(f"percentile must be within (0, 100], not {q}")
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(records: Sequence[Record], duration_s: float) -> Summary:
    """Counts and latency percentiles of a finished run."""
    latencies = [
        r["latency_ms"] for r in records if r["status"] is not None and r["latency_ms"] is not None
    ]
    p50 = percentile(latencies, 50)
    p99 = percentile(latencies, 99)
    return {
        "count": len(records),
        "ok": sum(1 for r in records if is_ok(r)),
        "errors": sum(1 for r in records if r["error"] is not None),
        "p50_ms": None if p50 is None else round(p50, 3),
        "p99_ms": None if p99 is None else round(p99, 3),
        "duration_s": round(duration_s, 3),
    }


def is_ok(record: Record) -> bool:
    """A 2xx status that arrived without error."""
    status = record["status"]
    return status is not None and 200 <= status < 300 and record["error"] is None


def parse_responder(body: bytes) -> Responder | None:
    """Who answered, from an echo-server JSON body; ``None`` for any other body."""
    try:
        decoded = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(decoded, dict) or not all(k in decoded for k in RESPONDER_FIELDS):
        return None
    values = [decoded[k] for k in RESPONDER_FIELDS]
    if not all(v is None or isinstance(v, str) for v in values):
        return None
    pod, namespace, cluster, client_id = values
    remote = decoded.get("remote")
    return {
        "pod": pod,
        "namespace": namespace,
        "cluster": cluster,
        "client_id": client_id,
        "remote": remote if isinstance(remote, str) else None,
    }


def describe_error(kind: str, detail: str, settings: Settings = SETTINGS) -> str:
    """A short ``Kind: detail`` text for a record or probe answer."""
    text = f"{kind}: {detail}" if detail else kind
    limit = settings.max_error_chars
    return text if len(text) <= limit else text[: limit - 1] + "…"


def not_started(i: int, reason: str) -> Record:
    """The record of a request that was never sent."""
    return {"i": i, "status": None, "latency_ms": None, "responder": None, "error": reason}
