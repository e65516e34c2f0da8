"""``isthmus viz``: stat, authz, edges, tap and top from the proxies themselves.

Linkerd's verbs, flags and columns, with no Prometheus and nothing installed:
figures come from two scrapes of each proxy's ``/metrics`` through the API
server's pod proxy, ``--window`` apart (``--prometheus-url`` asks a Prometheus
instead); tap streams come from the proxies' mTLS tap port. Errors reading a
pod are warnings on stderr naming the pod; the table shows the pods that
answered.
"""

from __future__ import annotations

import queue
import re
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click

from mesh.install.target import kube_options, target_from
from mesh.viz.edges import edges
from mesh.viz.fetch import (
    ClusterReader,
    PodInfo,
    PrometheusSource,
    ScrapeError,
    ScrapeSource,
    pod_info,
)
from mesh.viz.render import render_authz, render_edges, render_stat, table
from mesh.viz.resources import (
    WORKLOAD_KINDS,
    Resource,
    canonical_kind,
    parse_resource,
    parse_selection,
)
from mesh.viz.scrape import Workload
from mesh.viz.stat import StatQuery, authz_rows, members, stat_rows
from mesh.viz.tap_client import TapFilter, TapSession
from mesh.viz.tapview import Top, enrich, event_line, event_text
from mesh.viz.window import Window

__all__ = ["parse_duration", "viz"]

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_WINDOW = "30s"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in ``30s``, ``1m30s``, ``500ms`` or a bare number of seconds."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        pos, value = 0, 0.0
        for m in _DURATION.finditer(text):
            if m.start() != pos:
                break
            value += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if pos != len(text) or not text:
            raise click.BadParameter(
                f"expected a duration such as 30s, 1m or 500ms; got {text!r}"
            ) from None
    if value <= 0:
        raise click.BadParameter(f"the window must be positive, got {text!r}")
    return value


def _common(command: F) -> F:
    for option in reversed(
        [
            click.option(
                "-n",
                "--namespace",
                default="default",
                show_default=True,
                help="Namespace of the resources.",
            ),
            click.option(
                "-A", "--all-namespaces", is_flag=True, help="Resources of every namespace."
            ),
            click.option(
                "-o",
                "--output",
                type=click.Choice(["table", "wide", "json"]),
                default="table",
                show_default=True,
                help="Output format.",
            ),
        ]
    ):
        command = option(command)
    return kube_options(command)


def _window_options(command: F) -> F:
    command = click.option(
        "--prometheus-url",
        help="Read the figures from this Prometheus (its HTTP API) instead of scraping proxies.",
    )(command)
    command = click.option(
        "-v", "--verbose", is_flag=True, help="Say on stderr when the window opens (first scrape)."
    )(command)
    return click.option(
        "-t",
        "--window",
        "--time-window",
        "window",
        default=DEFAULT_WINDOW,
        show_default=True,
        help="Time window the figures are computed over (two scrapes this far apart).",
    )(command)


def _reader(ctx: click.Context, context: str | None, kubeconfig: str | None) -> ClusterReader:
    target = target_from(ctx, context, kubeconfig)
    return ClusterReader(target.config(), target.context or "")


def _fail(e: Exception) -> click.ClickException:
    return click.ClickException(str(e))


def _warn(errors: list[str]) -> None:
    for error in errors:
        click.echo(f"warning: could not scrape {error}", err=True)


def _snapshots(
    reader: ClusterReader,
    namespaces: list[str] | None,
    seconds: float,
    prometheus: str | None,
    verbose: bool = False,
) -> Window:
    pods = reader.pods(sorted(set(namespaces)) if namespaces is not None else None)
    source = PrometheusSource(prometheus) if prometheus else ScrapeSource(reader)

    def started(n: int) -> None:
        if verbose:
            click.echo(
                f"viz: first scrape done ({n} proxies); the second in {seconds:g}s", err=True
            )

    before, after, errors = source.window(pods, seconds, started=started)
    _warn(errors)
    return Window(before, after, [p.workload for p in pods])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def viz() -> None:
    """Traffic, authorization and live requests of meshed workloads (Linkerd viz's commands).

    \b
    Verbs:
      stat    success rate, RPS, latency percentiles and connections per resource
      authz   the same per route, Server and authorization, with refused requests
      edges   who talks to whom, with both ends' mTLS identities (cross-cluster too)
      tap     live requests and responses of a resource's pods (-o json: Linkerd's events)
      top     tapped requests aggregated by source, destination and path

    Figures come from the proxies' own metrics, scraped twice through the API
    server over --window (no Prometheus needed); --prometheus-url reads them
    from a Prometheus instead.
    """


@viz.command()
@click.argument("resources", nargs=-1, required=True)
@_common
@_window_options
@click.option("--from", "from_", help="Only traffic from this resource (type/name).")
@click.option("--to", help="Only traffic to this resource (type/name).")
@click.option("--from-namespace", help="Namespace of --from [default: --namespace].")
@click.option("--to-namespace", help="Namespace of --to [default: --namespace].")
@click.pass_context
def stat(
    ctx: click.Context,
    resources: tuple[str, ...],
    namespace: str,
    all_namespaces: bool,
    output: str,
    window: str,
    prometheus_url: str | None,
    verbose: bool,
    from_: str | None,
    to: str | None,
    from_namespace: str | None,
    to_namespace: str | None,
    context: str | None,
    kubeconfig: str | None,
) -> None:
    """Show SUCCESS, RPS, LATENCY_P50/95/99 and TCP_CONN of RESOURCES.

    \b
    RESOURCES is a type (deploy, pod, svc, ns, authority, trafficsplit, sts, ds, rs, job),
    type/name or type name...; a mirror Service shows its remote cluster (-o wide, json).
    Examples:
      isthmus viz stat -n mc-demo deploy
      isthmus viz stat -n mc-demo authority --from deploy/slow-cooker
      isthmus viz stat -n mc-demo svc -o wide
    """
    seconds = parse_duration(window)
    try:
        selection = parse_selection(resources)
        src = parse_resource(from_, from_namespace or namespace) if from_ else None
        dst = parse_resource(to, to_namespace or namespace) if to else None
        if src is not None and dst is not None:
            raise ValueError("--from and --to cannot be used together")
        for given in (src, dst):
            if given is not None:
                members(given, namespace)  # a workload, or ValueError saying so
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    scope: str | None = None if all_namespaces or selection.kind == "namespace" else namespace
    kind = selection.kind
    if kind in WORKLOAD_KINDS or (kind == "authority" and src is None):
        namespaces: list[str] | None = None if scope is None else [scope]
        for extra in (src, dst):
            if namespaces is not None and extra is not None:
                namespaces.append(
                    extra.name
                    if extra.kind == "namespace" and extra.name
                    else extra.namespace or namespace
                )
    elif src is not None and src.kind != "namespace":
        namespaces = [src.namespace or namespace]
    else:
        namespaces = None
    reader = _reader(ctx, context, kubeconfig)
    try:
        window_ = _snapshots(reader, namespaces, seconds, prometheus_url, verbose)
        services = reader.services(scope) if kind in ("service", "authority") else []
        splits = reader.splits(scope) if kind == "trafficsplit" else []
        rows = stat_rows(window_, StatQuery(selection, scope, src, dst), services, splits)
    except (ScrapeError, ValueError) as e:
        raise _fail(e) from None
    multi = scope is None and kind != "namespace"
    click.echo(render_stat(rows, kind, output, multi), nl=False)


@viz.command()
@click.argument("resource")
@_common
@_window_options
@click.pass_context
def authz(
    ctx: click.Context,
    resource: str,
    namespace: str,
    all_namespaces: bool,
    output: str,
    window: str,
    prometheus_url: str | None,
    verbose: bool,
    context: str | None,
    kubeconfig: str | None,
) -> None:
    """Show traffic of RESOURCE's pods per ROUTE, SERVER and AUTHORIZATION.

    \b
    Requests refused by policy are counted as UNAUTHORIZED on a row with no
    authorization. Example:
      isthmus viz authz -n mc-demo deploy
    """
    seconds = parse_duration(window)
    scope = None if all_namespaces else namespace
    try:
        target = parse_resource(resource, scope)
        members(target, scope)  # a workload, or ValueError saying so
        reader = _reader(ctx, context, kubeconfig)
        window_ = _snapshots(
            reader, None if scope is None else [scope], seconds, prometheus_url, verbose
        )
        rows = authz_rows(window_, target, scope)
    except (ScrapeError, ValueError) as e:
        raise _fail(e) from None
    click.echo(render_authz(rows, output), nl=False)


@viz.command("edges")
@click.argument("kind")
@_common
@click.pass_context
def edges_command(
    ctx: click.Context,
    kind: str,
    namespace: str,
    all_namespaces: bool,
    output: str,
    context: str | None,
    kubeconfig: str | None,
) -> None:
    """Show edges between resources of KIND: SRC, DST, CLIENT_ID and SERVER_ID.

    \b
    A destination in another cluster shows as DST@cluster; its SERVER_ID is the
    identity the client's proxy verified (the remote pod in pod-to-pod mode, the
    gateway in gateway mode). Clients from other clusters seen by a server here
    are listed by their identity. Example:
      isthmus viz edges -n mc-demo deploy -o wide
    """
    try:
        canonical = canonical_kind(kind)
        if canonical not in WORKLOAD_KINDS:
            raise ValueError(f"edges needs a workload type (deploy, pod, ns, ...), got {kind}")
        reader = _reader(ctx, context, kubeconfig)
        pods = reader.pods(None)
        scrapes, errors = reader.scrape(pods)
    except (ScrapeError, ValueError) as e:
        raise _fail(e) from None
    _warn(errors)
    rows = edges(scrapes, canonical, None if all_namespaces else namespace)
    click.echo(render_edges(rows, canonical, output), nl=False)


def _tap_targets(
    reader: ClusterReader, resource: Resource, namespace: str | None
) -> tuple[list[tuple[PodInfo, dict[str, Any]]], dict[str, Workload]]:
    """The meshed pods of ``resource`` to tap, and every running pod by IP (to name peers)."""
    who = members(resource, namespace)
    found = [(pod_info(p, reader.cluster), p) for p in reader.raw_pods(None)]
    targets = [
        (info, p) for info, p in found if info.workload.meshed and info.ip and who(info.workload)
    ]
    return targets, {info.ip: info.workload for info, _ in found if info.ip}


def _tap_options(command: F) -> F:
    for option in reversed(
        [
            click.option("--method", help="Only requests with this HTTP method."),
            click.option("--authority", help="Only requests for this authority."),
            click.option("--path", help="Only requests whose path starts with this."),
            click.option(
                "--direction",
                type=click.Choice(["inbound", "outbound"]),
                help="Only this side of the proxy.",
            ),
            click.option(
                "-L",
                "--linkerd-namespace",
                default="linkerd",
                show_default=True,
                help="Control-plane namespace (its issuer signs the tap identity).",
            ),
            click.option(
                "-v", "--verbose", is_flag=True, help="Say on stderr when each pod's tap is open."
            ),
        ]
    ):
        command = option(command)
    return command


@viz.command()
@click.argument("resource")
@_common
@_tap_options
@click.option("--limit", type=click.IntRange(min=1), help="Stop after this many events (isthmus).")
@click.option(
    "--duration", help="Stop after this long, e.g. 30s (isthmus) [default: until interrupted]."
)
@click.pass_context
def tap(
    ctx: click.Context,
    resource: str,
    namespace: str,
    all_namespaces: bool,
    output: str,
    method: str | None,
    authority: str | None,
    path: str | None,
    direction: str | None,
    linkerd_namespace: str,
    verbose: bool,
    limit: int | None,
    duration: str | None,
    context: str | None,
    kubeconfig: str | None,
) -> None:
    """Stream the requests and responses of RESOURCE's pods, live.

    \b
    -o json prints one event per line in Linkerd's shape (requestInitEvent,
    responseInitEvent.httpStatus, responseEndEvent, source/destination with
    their identities), so Linkerd's jq filters work unchanged:
      isthmus viz tap -n mc-demo deploy/slow-cooker -o json \\
        | jq ".responseInitEvent | select( . != null ) | .httpStatus"
    The CLI signs itself a short-lived tap identity with the cluster's issuer and
    connects to each pod's tap port over mTLS, so pod IPs must be reachable.
    """
    until = time.monotonic() + parse_duration(duration) if duration else None
    scope = None if all_namespaces else namespace
    try:
        target = parse_resource(resource, scope)
        members(target, scope)  # a workload, or ValueError saying so
        reader = _reader(ctx, context, kubeconfig)
        pods, by_ip = _tap_targets(reader, target, scope)
    except (ScrapeError, ValueError) as e:
        raise _fail(e) from None
    if not pods:
        raise click.ClickException(
            f"no running meshed pods for {target} in {scope or 'any namespace'}"
        )
    what = TapFilter(direction, authority, path, method)
    for event in _tap_events(reader, pods, by_ip, what, limit, until, linkerd_namespace, verbose):
        click.echo(event_line(event) if output == "json" else event_text(event))
        sys.stdout.flush()


def _tap_events(
    reader: ClusterReader,
    pods: list[tuple[PodInfo, dict[str, Any]]],
    by_ip: dict[str, Workload],
    what: TapFilter,
    limit: int | None,
    until: float | None,
    linkerd_namespace: str,
    verbose: bool = False,
    indexed: list[int] | None = None,
) -> Iterator[dict[str, Any]]:
    """Tap events as they arrive, until ``limit`` events, ``until`` or every stream ended."""
    with TapSession(reader, linkerd_namespace) as session:
        threads = session.start(pods, what, limit)
        sent, failed = 0, 0
        while limit is None or sent < limit:
            timeout = 0.5 if until is None else max(0.0, min(0.5, until - time.monotonic()))
            if until is not None and time.monotonic() >= until:
                return
            try:
                item = session.events.get(timeout=timeout)
            except queue.Empty:
                if not any(t.is_alive() for t in threads) and session.events.empty():
                    break
                continue
            if item.error is not None:
                failed += 1
                click.echo(f"warning: cannot tap {item.error}", err=True)
                continue
            if item.opened:
                if verbose:
                    w = item.workload
                    click.echo(f"viz: tapping {w.namespace}/{w.name}", err=True)
                continue
            assert item.event is not None
            sent += 1
            if indexed is not None:
                indexed.append(item.index)
            yield enrich(item.event, item.workload, by_ip)
        if failed == len(pods):
            raise click.ClickException("no pod could be tapped")


@viz.command()
@click.argument("resource")
@_common
@_tap_options
@click.option(
    "-t",
    "--window",
    "--duration",
    "window",
    default="10s",
    show_default=True,
    help="How long to tap before printing the table.",
)
@click.pass_context
def top(
    ctx: click.Context,
    resource: str,
    namespace: str,
    all_namespaces: bool,
    output: str,
    method: str | None,
    authority: str | None,
    path: str | None,
    direction: str | None,
    linkerd_namespace: str,
    verbose: bool,
    window: str,
    context: str | None,
    kubeconfig: str | None,
) -> None:
    """Tap RESOURCE's pods for --window, then show requests by source, destination and path.

    \b
    Columns: Source Destination Method Path Count Best Worst Last Success Rate.
      isthmus viz top -n mc-demo deploy/bb --window 10s
    """
    until = time.monotonic() + parse_duration(window)
    scope = None if all_namespaces else namespace
    try:
        target = parse_resource(resource, scope)
        members(target, scope)  # a workload, or ValueError saying so
        reader = _reader(ctx, context, kubeconfig)
        pods, by_ip = _tap_targets(reader, target, scope)
    except (ScrapeError, ValueError) as e:
        raise _fail(e) from None
    if not pods:
        raise click.ClickException(
            f"no running meshed pods for {target} in {scope or 'any namespace'}"
        )
    board = Top()
    indexed: list[int] = []
    for event in _tap_events(
        reader,
        pods,
        by_ip,
        TapFilter(direction, authority, path, method),
        None,
        until,
        linkerd_namespace,
        verbose,
        indexed,
    ):
        board.add(event, indexed[-1])
    rows = board.rows()
    if output == "json":
        import json

        keys = (
            "source",
            "destination",
            "method",
            "path",
            "count",
            "best",
            "worst",
            "last",
            "success_rate",
        )
        click.echo(json.dumps([dict(zip(keys, r, strict=True)) for r in rows], indent=2))
        return
    if not rows:
        click.echo("No requests tapped.")
        return
    columns = (
        "Source",
        "Destination",
        "Method",
        "Path",
        "Count",
        "Best",
        "Worst",
        "Last",
        "Success Rate",
    )
    click.echo(table(columns, rows), nl=False)
