"""Every wait and limit of the test workloads, named and documented in one place.

Durations are seconds unless the name says otherwise. The values are fixed: a test
workload should behave the same in every cluster, so nothing here reads the environment.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    #: in-flight HTTP requests may finish after SIGTERM; kept under Kubernetes' default
    #: 30 s termination grace period so the process exits before it is killed.
    shutdown_grace: float = 20.0
    #: longest ``delay_ms`` the server honours, in milliseconds.
    max_delay_ms: float = 60_000.0
    #: most requests one ``POST /run`` may ask for.
    max_count: int = 100_000
    #: a run stops starting requests after this long; ``count / rate`` must fit in it.
    max_run_duration: float = 600.0
    #: most requests of one run in flight at once.
    max_concurrency: int = 1_000
    #: highest ``rate`` a run may ask for, in requests per second.
    max_rate: float = 10_000.0
    #: per-request timeout of a run when the caller does not give one.
    default_request_timeout: float = 5.0
    #: longest per-request timeout a caller may ask for.
    max_request_timeout: float = 60.0
    #: in-flight requests of a run when the caller does not say.
    default_concurrency: int = 8
    #: most bytes of a response body read to find who answered.
    max_body_bytes: int = 64 * 1024
    #: one system-resolver lookup of ``GET /dns``.
    dns_lookup: float = 10.0
    #: connecting and reading the first line in ``GET /tcp`` (default of its ``timeout``).
    tcp_probe: float = 5.0
    #: longest first line ``GET /tcp`` reads, in bytes.
    max_line_bytes: int = 64 * 1024
    #: longest error text put in a record or probe answer, in characters.
    max_error_chars: int = 200


SETTINGS = Settings()
