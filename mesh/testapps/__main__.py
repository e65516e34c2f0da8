"""``isthmus-testapp``: the project's test workloads as one command.

isthmus-testapp server [--port 8080] [--host 0.0.0.0] [--tcp-port N]
isthmus-testapp client [--port 9090] [--host 0.0.0.0]
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import replace

import click

from mesh.testapps import client as client_app
from mesh.testapps import server as server_app
from mesh.testapps.podinfo import PodInfo
from mesh.testapps.settings import SETTINGS, Settings

_PORT = click.IntRange(0, 65535)
_GRACE = click.option(
    "--shutdown-grace",
    type=click.FloatRange(0, 3600),
    default=SETTINGS.shutdown_grace,
    show_default=True,
    help="Seconds in-flight requests may take to finish after SIGTERM.",
)


def _settings(shutdown_grace: float) -> Settings:
    return replace(SETTINGS, shutdown_grace=shutdown_grace)


@click.group()
@click.option("--log-level", default="INFO", show_default=True, help="Python logging level.")
def main(log_level: str) -> None:
    """Test workloads for Isthmus conformance and end-to-end suites."""
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@main.command()
@click.option("--port", type=_PORT, default=8080, show_default=True, help="HTTP port.")
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--tcp-port", type=_PORT, default=None, help="Raw TCP hello+echo port.")
@_GRACE
def server(port: int, host: str, tcp_port: int | None, shutdown_grace: float) -> None:
    """Answer every HTTP request with this pod's identity and what it saw."""
    config = server_app.ServerConfig(host=host, port=port, tcp_port=tcp_port)
    info = PodInfo.from_env(os.environ)
    asyncio.run(server_app.serve(config, info, _settings(shutdown_grace)))


@main.command()
@click.option("--port", type=_PORT, default=9090, show_default=True, help="Control API port.")
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@_GRACE
def client(port: int, host: str, shutdown_grace: float) -> None:
    """Serve the load client's control API (/run, /dns, /tcp, /healthz)."""
    config = client_app.ClientConfig(host=host, port=port)
    asyncio.run(client_app.serve(config, _settings(shutdown_grace)))


if __name__ == "__main__":
    main()
