"""Which cluster a command talks to: ``--context`` / ``--kubeconfig``, and clients for it.

The flags are accepted both before the command (``isthmus --context target
check``, as ``linkerd --context target check`` in the seeds) and after it; the
later one wins. Without them: the in-cluster service account if there is one,
else ``$KUBECONFIG`` or ``~/.kube/config`` and its current context. lightkube
is imported only when a client is made, so commands that never talk to a
cluster start fast.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from lightkube import AsyncClient, Client
    from lightkube.config.kubeconfig import SingleConfig

__all__ = ["KubeTarget", "TargetError", "kube_options", "target_from"]

F = TypeVar("F", bound=Callable[..., Any])

_TIMEOUT = 10.0
"""Seconds a CLI request to the API server may take."""


class TargetError(click.ClickException):
    """No usable kubeconfig or context."""


@dataclass(frozen=True)
class KubeTarget:
    """A kube context in a kubeconfig file; ``None`` means the default."""

    context: str | None = None
    kubeconfig: str | None = None

    def merged(self, context: str | None, kubeconfig: str | None) -> KubeTarget:
        """This target with any flag given later taking precedence."""
        return replace(
            self,
            context=context or self.context,
            kubeconfig=kubeconfig or self.kubeconfig,
        )

    def config(self) -> SingleConfig:
        """The connection settings; ``TargetError`` saying why there are none."""
        from lightkube.config.kubeconfig import DEFAULT_KUBECONFIG, KubeConfig
        from lightkube.core.exceptions import ConfigError

        try:
            if self.kubeconfig:
                kube = KubeConfig.from_file(self.kubeconfig)
            elif self.context:
                kube = KubeConfig.from_file(os.environ.get("KUBECONFIG", DEFAULT_KUBECONFIG))
            else:
                kube = KubeConfig.from_env()
            single = kube.get(context_name=self.context)
        except (ConfigError, OSError) as e:
            raise TargetError(f"cannot load the kubeconfig: {e}") from None
        if single is None:
            raise TargetError("the kubeconfig has no current context; pass --context")
        return single

    def client(self, field_manager: str = "isthmus") -> Client:
        import httpx2
        from lightkube import Client

        return Client(self.config(), field_manager=field_manager, timeout=httpx2.Timeout(_TIMEOUT))

    def async_client(self, field_manager: str = "isthmus") -> AsyncClient:
        import httpx2
        from lightkube import AsyncClient

        return AsyncClient(
            self.config(), field_manager=field_manager, timeout=httpx2.Timeout(_TIMEOUT)
        )


def kube_options(command: F) -> F:
    """Add ``--context`` and ``--kubeconfig`` to a click command or group."""
    command = click.option(
        "--kubeconfig",
        type=click.Path(dir_okay=False),
        help="Path to the kubeconfig file [default: $KUBECONFIG or ~/.kube/config].",
    )(command)
    return click.option("--context", help="Name of the kubeconfig context to use.")(command)


def target_from(ctx: click.Context, context: str | None, kubeconfig: str | None) -> KubeTarget:
    """The target of the group's flags (if any) overridden by the command's own."""
    outer = ctx.find_object(KubeTarget) or KubeTarget()
    return outer.merged(context, kubeconfig)
