"""The proxy injector webhook over HTTPS: the thin aiohttp layer around ``webhook.admit``.

``InjectorServer`` answers AdmissionReviews on ``POST /`` over TLS and serves
``/ready`` and ``/live`` on a plain-HTTP admin port. The namespace of each pod is
read through a ``NamespaceLookup`` (the seam: lightkube in production, a fake
in tests), bounded by ``ServerSettings.lookup_timeout``; a lookup that fails or
times out still gets the pod admitted (with a warning), never refused.

Hostile clients cost only their connection (SEC-1): the TLS handshake must
finish within ``handshake_timeout``; a connection that sends no complete head
within ``keepalive_timeout`` (or idles that long between requests) is closed
(aiohttp's keep-alive timer); a body must arrive in full within
``request_timeout`` (else 408; the rest is read and dropped for at most as
long again, then the connection closes) and may not exceed ``max_body`` (413); request
lines and header fields are bounded by aiohttp's parser (8 KiB each).

``isthmus component injector --tls-cert F --tls-key F --port 8443
--admin-port 9995 --config F --trust-anchors F``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from mesh.inject.config import InjectConfig, injector_created_by
from mesh.inject.webhook import ReviewError, admit, allow, parse_review
from mesh.install.components import INJECTOR_ADMIN_PORT, INJECTOR_PORT
from mesh.serving import stop_signal

__all__ = [
    "InjectorServer",
    "NamespaceLookup",
    "ServerSettings",
    "kube_namespace_lookup",
    "main",
    "server_ssl_context",
]

_log = logging.getLogger(__name__)

NamespaceLookup = Callable[[str], Awaitable[Mapping[str, str]]]
"""Namespace name -> its annotations; raises if it cannot be read."""


@dataclass(frozen=True)
class ServerSettings:
    """Limits of the injector, in seconds and bytes."""

    lookup_timeout: float = 3.0
    """How long a namespace lookup may take before the pod is judged without it."""
    max_body: int = 4 * 1024 * 1024
    """Largest AdmissionReview accepted."""
    shutdown_timeout: float = 5.0
    """How long stopping waits for requests in flight."""
    handshake_timeout: float = 10.0
    """A client must complete the TLS handshake within this."""
    keepalive_timeout: float = 15.0
    """A connection without a complete request head for this long is closed."""
    request_timeout: float = 10.0
    """A request body must arrive in full within this (else 408)."""


class _Site(web.SockSite):
    """A ``SockSite`` whose TLS handshake is bounded (aiohttp leaves asyncio's 60 s)."""

    def __init__(self, *args: object, handshake_timeout: float, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._handshake_timeout = handshake_timeout

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            server,
            sock=self._sock,
            ssl=self._ssl_context,
            backlog=self._backlog,
            ssl_handshake_timeout=self._handshake_timeout if self._ssl_context else None,
        )


def server_ssl_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A TLS 1.2+ server context serving ``cert`` with ``key``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


class InjectorServer:
    """The webhook (HTTPS) and its admin endpoints (HTTP) on their own ports."""

    def __init__(
        self,
        config: InjectConfig,
        lookup: NamespaceLookup,
        settings: ServerSettings | None = None,
    ) -> None:
        self.config = config
        self.settings = settings or ServerSettings()
        self._lookup = lookup
        self._runners: list[web.AppRunner] = []

    async def _namespace_annotations(self, name: str) -> Mapping[str, str] | None:
        try:
            async with asyncio.timeout(self.settings.lookup_timeout):
                return await self._lookup(name)
        except Exception as e:
            _log.warning("cannot read namespace %s: %s", name, e or type(e).__name__)
            return None

    async def _review(self, request: web.Request) -> web.Response:
        try:
            async with asyncio.timeout(self.settings.request_timeout):
                body = await request.read()
        except TimeoutError:
            timed_out = web.json_response({"error": "request body timed out"}, status=408)
            timed_out.force_close()
            return timed_out
        try:
            review = parse_review(body)
        except ReviewError as e:
            return web.json_response({"error": str(e)}, status=400)
        uid = str(review["uid"])
        try:
            is_pod = (review.get("resource") or {}).get("resource") == "pods"
            namespace = str(review.get("namespace") or "")
            annotations = await self._namespace_annotations(namespace) if is_pod else {}
            answer, decision = admit(review, annotations, self.config)
        except Exception as e:
            _log.exception("admission review %s failed", uid)
            return web.json_response(allow(uid, f"linkerd-proxy-injector failed: {e}"))
        _log.info("%s: inject=%s (%s)", uid, decision.inject, decision.reason)
        return web.json_response(answer)

    async def _ok(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    def webhook_app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.max_body)
        app.router.add_post("/", self._review)
        app.router.add_post("/inject", self._review)
        return app

    def admin_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ready", self._ok)
        app.router.add_get("/live", self._ok)
        return app

    async def _serve(
        self, app: web.Application, host: str, port: int, ssl_context: ssl.SSLContext | None
    ) -> int:
        runner = web.AppRunner(
            app,
            access_log=None,
            shutdown_timeout=self.settings.shutdown_timeout,
            keepalive_timeout=self.settings.keepalive_timeout,
            lingering_time=self.settings.request_timeout,
        )
        await runner.setup()
        self._runners.append(runner)
        sock = socket.create_server((host, port), reuse_port=False)
        site = _Site(
            runner,
            sock,
            ssl_context=ssl_context,
            handshake_timeout=self.settings.handshake_timeout,
        )
        await site.start()
        return int(sock.getsockname()[1])

    async def start(
        self, host: str, port: int, ssl_context: ssl.SSLContext, admin_port: int | None = None
    ) -> tuple[int, int | None]:
        """Listen; return the webhook port and the admin port (``None`` if not served)."""
        bound = await self._serve(self.webhook_app(), host, port, ssl_context)
        admin = None
        if admin_port is not None:
            admin = await self._serve(self.admin_app(), host, admin_port, None)
        return bound, admin

    async def stop(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()


def kube_namespace_lookup(
    kubeconfig: str | None,
) -> tuple[NamespaceLookup, Callable[[], Awaitable[None]]]:
    """A lookup through lightkube (in-cluster unless ``kubeconfig``), and its close function."""
    from lightkube import AsyncClient
    from lightkube.config.kubeconfig import KubeConfig
    from lightkube.resources.core_v1 import Namespace

    config = KubeConfig.from_file(kubeconfig) if kubeconfig else None
    client = AsyncClient(config=config, field_manager="isthmus-proxy-injector")

    async def lookup(name: str) -> Mapping[str, str]:
        ns = await client.get(Namespace, name)
        return dict((ns.metadata.annotations if ns.metadata else None) or {})

    return lookup, client.close


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="isthmus component injector", description="The mesh's proxy injector webhook."
    )
    parser.add_argument("--tls-cert", type=Path, required=True, help="serving certificate PEM")
    parser.add_argument("--tls-key", type=Path, required=True, help="serving key PEM")
    parser.add_argument("--port", type=int, default=INJECTOR_PORT)
    parser.add_argument("--admin-port", type=int, default=INJECTOR_ADMIN_PORT)
    parser.add_argument("--address", default="0.0.0.0", help="address to listen on")
    parser.add_argument("--config", type=Path, required=True, help="linkerd-config `values` file")
    parser.add_argument("--trust-anchors", type=Path, required=True, help="trust anchors PEM")
    parser.add_argument("--kubeconfig", default=None, help="default: in-cluster or $KUBECONFIG")
    parser.add_argument("--log-level", default="INFO")
    return parser


async def _run(args: argparse.Namespace, config: InjectConfig) -> None:
    context = server_ssl_context(args.tls_cert, args.tls_key)
    lookup, close = kube_namespace_lookup(args.kubeconfig)
    server = InjectorServer(config, lookup)
    port, admin = await server.start(args.address, args.port, context, args.admin_port)
    _log.info("proxy injector on %s:%d (admin %s)", args.address, port, admin)
    stopping = stop_signal()
    try:
        await stopping.wait()
    finally:
        await server.stop()
        with contextlib.suppress(Exception):
            await close()


def main(argv: Sequence[str] | None = None) -> None:
    """Run the injector until SIGTERM; exit 1 if its configuration cannot be read."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = InjectConfig.from_texts(
            args.config.read_text(), args.trust_anchors.read_text(), injector_created_by()
        )
        server_ssl_context(args.tls_cert, args.tls_key)
    except (OSError, ValueError, ssl.SSLError) as e:
        raise SystemExit(f"injector: {e}") from None
    asyncio.run(_run(args, config))
