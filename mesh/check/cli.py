"""``isthmus check [--pre]``: fetch a snapshot, run the checks, print, exit 1 on failure.

The checks and lightkube are imported when the command runs, not when the CLI loads.

Failures that may clear by themselves (control-plane pods still starting) are
retried until ``--wait`` runs out, as ``linkerd check`` does; a fresh snapshot
is fetched every ``CheckSettings.retry_interval``. Anything else is reported
at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import click

from mesh.check.snapshot import ClusterSnapshot, Result, Status
from mesh.identity.cli import Duration
from mesh.install.target import KubeTarget, TargetError, kube_options, target_from

if TYPE_CHECKING:
    from mesh.check.checks import Check

__all__ = ["CheckSettings", "check", "converge", "converge_results", "multicluster_check"]


@dataclass(frozen=True)
class CheckSettings:
    """How long ``check`` waits for retryable failures to clear, in seconds."""

    wait: float = 300.0
    """Give up retrying after this (``--wait``)."""
    retry_interval: float = 2.0
    """Pause between snapshots while retrying."""


class _Wait(Duration):
    """A duration, or zero for "do not wait"."""

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta:
        if str(value).strip() in ("0", "0s"):
            return timedelta(0)
        return super().convert(value, param, ctx)


def _retryable(results: Sequence[Result]) -> bool:
    failures = [r for r in results if r.status is Status.FAIL]
    return bool(failures) and all(r.retryable for r in failures)


def converge(
    fetch: Callable[[], ClusterSnapshot],
    checks: Sequence[Check],
    settings: CheckSettings,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    waiting: Callable[[Sequence[Result]], None] = lambda results: None,
) -> list[Result]:
    """Results of ``checks`` on fresh snapshots, until none is retryable or the wait is over."""
    from mesh.check.checks import run_checks

    return converge_results(
        lambda: run_checks(checks, fetch()), settings, clock=clock, sleep=sleep, waiting=waiting
    )


def converge_results(
    evaluate: Callable[[], list[Result]],
    settings: CheckSettings,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    waiting: Callable[[Sequence[Result]], None] = lambda results: None,
) -> list[Result]:
    """``evaluate()`` again and again until nothing failing is retryable or the wait is over."""
    deadline = clock() + settings.wait
    while True:
        results = evaluate()
        if not _retryable(results) or clock() + settings.retry_interval > deadline:
            return results
        waiting(results)
        sleep(settings.retry_interval)


def _multicluster_evaluator(
    ctx: click.Context, target: KubeTarget, control_plane_ns: str
) -> Callable[[], list[Result]]:
    """Fresh ``check --multicluster`` results on each call (the multicluster seam does I/O)."""
    from mesh.check.mcfetch import fetch_multicluster
    from mesh.check.multicluster import MulticlusterSnapshot, multicluster_checks
    from mesh.multicluster.cli import kube

    try:
        cluster = kube.connect(target)
    except kube.ClusterError as e:
        error = f"cannot initialize the client: {e}"
        return lambda: multicluster_checks(MulticlusterSnapshot(error=error))
    ctx.call_on_close(cluster.close)
    return lambda: multicluster_checks(
        fetch_multicluster(cluster, kube.connect, control_plane_ns=control_plane_ns)
    )


def _fetcher(
    ctx: click.Context, target: KubeTarget, ns: str, pre: bool
) -> Callable[[], ClusterSnapshot]:
    """The seam between the checks and the cluster: a function returning fresh snapshots."""
    from mesh.check.fetch import fetch_snapshot, server_version

    try:
        config = target.config()
        client = target.client()
    except TargetError as e:
        error = f"cannot initialize the client: {e.message}"
        return lambda: ClusterSnapshot(now=datetime.now(UTC), control_plane_ns=ns, api_error=error)
    ctx.call_on_close(client.close)
    return lambda: fetch_snapshot(
        client,
        lambda: server_version(config),
        control_plane_ns=ns,
        pre=pre,
        now=datetime.now(UTC),
    )


@click.command("check")
@click.option("--pre", is_flag=True, help="Check that the cluster is ready for an install.")
@click.option(
    "--multicluster",
    is_flag=True,
    help="Also check this cluster's links: Link CRD, credentials, the target's API, shared "
    "trust anchors, mirror controllers, gateways and mirrors.",
)
@click.option("--control-plane-ns", default="linkerd", show_default=True)
@click.option(
    "-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.option(
    "--wait",
    type=_Wait(),
    default="300s",
    show_default=True,
    help="How long to wait for control-plane pods to become ready.",
)
@kube_options
@click.pass_context
def check(
    ctx: click.Context,
    pre: bool,
    multicluster: bool,
    control_plane_ns: str,
    output: str,
    wait: timedelta,
    context: str | None,
    kubeconfig: str | None,
) -> None:
    """Check that the control plane is installed and healthy (or, with --pre, installable).

    Each condition is listed as holding, a warning, or failing (with what is
    wrong and what to do). Exits 1 if any fails. With --multicluster, run it
    in the SOURCE cluster of links (where `multicluster link` output was applied).
    """
    from mesh.check.checks import INSTALL_CHECKS, PRE_CHECKS

    if pre and multicluster:
        raise click.UsageError("--pre and --multicluster do not go together")
    target = target_from(ctx, context, kubeconfig)
    fetch = _fetcher(ctx, target, control_plane_ns, pre)
    checks = PRE_CHECKS if pre else INSTALL_CHECKS
    settings = CheckSettings(wait=wait.total_seconds())

    results = converge(fetch, checks, settings, waiting=_waiting)
    if multicluster:
        evaluate = _multicluster_evaluator(ctx, target, control_plane_ns)
        results += converge_results(evaluate, settings, waiting=_waiting)
    _report(ctx, results, output)


def _waiting(results: Sequence[Result]) -> None:
    pending = [r.message for r in results if r.status is Status.FAIL]
    click.echo(f"waiting: {'; '.join(pending)}", err=True)


def _report(ctx: click.Context, results: Sequence[Result], output: str) -> None:
    from mesh.check.report import render_json, render_text, succeeded

    click.echo(render_json(results) if output == "json" else render_text(results), nl=False)
    if not succeeded(results):
        ctx.exit(1)


@click.command("check")
@click.option("--linkerd-namespace", "control_plane_ns", default="linkerd", show_default=True)
@click.option(
    "-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.option(
    "--wait",
    type=_Wait(),
    default="300s",
    show_default=True,
    help="How long to wait for mirror controllers and gateways to become ready.",
)
@kube_options
@click.pass_context
def multicluster_check(
    ctx: click.Context,
    control_plane_ns: str,
    output: str,
    wait: timedelta,
    context: str | None,
    kubeconfig: str | None,
) -> None:
    """Check only this cluster's links (what `isthmus check --multicluster` adds).

    \b
      isthmus --context west multicluster check

    Run it in the SOURCE cluster: the Link CRD, each Link's credentials, the
    target's API server answering to them, shared trust anchors, the mirror
    controller, the gateway and the mirrors. Exits 1 if any fails.
    """
    target = target_from(ctx, context, kubeconfig)
    evaluate = _multicluster_evaluator(ctx, target, control_plane_ns)
    settings = CheckSettings(wait=wait.total_seconds())
    _report(ctx, converge_results(evaluate, settings, waiting=_waiting), output)
