"""The mesh's components: the code each runs and the command line its container gives it.

Every container of the mesh runs the one image (ENTRYPOINT ``isthmus``) as
``isthmus component <name> <flags>``. ``COMPONENTS`` names the module whose
``main(argv)`` runs each; the hidden ``component`` command imports it only when
asked, so the CLI stays fast and a component that is not built yet fails with a
message saying so. The ``*_command`` functions are the flag contract between the
install manifests and each component's argument parser.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from mesh.install.values import Values

__all__ = [
    "COMPONENTS",
    "CONFIG_DIR",
    "DESTINATION_PORT",
    "FAILOVER_ADMIN_PORT",
    "IDENTITY_PORT",
    "INJECTOR_ADMIN_PORT",
    "INJECTOR_PORT",
    "ISSUER_DIR",
    "POLICY_PORT",
    "TOKEN_DIR",
    "TOKEN_FILE",
    "TRUST_ROOTS_DIR",
    "WEBHOOK_TLS_DIR",
    "ComponentMissing",
    "component",
    "destination_command",
    "failover_command",
    "identity_command",
    "injector_command",
    "load_component",
    "policy_command",
    "service_identity",
]

COMPONENTS: dict[str, str] = {
    "identity": "mesh.identity.service",
    "destination": "mesh.destination.server",
    "policy": "mesh.policy.server",
    "proxy": "mesh.proxy.__main__",
    "proxy-init": "mesh.proxy.init",
    "injector": "mesh.inject.server",
    "service-mirror": "mesh.multicluster.mirror.__main__",
    "pause": "mesh.multicluster.pause",
    "failover": "mesh.failover.__main__",
}
"""Component name -> module with ``main(argv: Sequence[str] | None)``."""

IDENTITY_PORT = 8080
DESTINATION_PORT = 8086
POLICY_PORT = 8090
INJECTOR_PORT = 8443
INJECTOR_ADMIN_PORT = 9995
"""The injector's plain-HTTP ``/ready`` and ``/live``."""
FAILOVER_ADMIN_PORT = 9996
"""The failover controller's ``/metrics``, ``/ready`` and ``/live``."""

ISSUER_DIR = "/var/run/linkerd/identity/issuer"
"""Where the identity pod mounts ``linkerd-identity-issuer`` (tls.crt, tls.key, ca.crt)."""
TRUST_ROOTS_DIR = "/var/run/linkerd/identity/trust-roots"
"""Where control-plane pods mount ``linkerd-identity-trust-roots`` (ca-bundle.crt)."""
WEBHOOK_TLS_DIR = "/var/run/linkerd/tls"
"""Where the injector mounts its serving certificate (tls.crt, tls.key)."""
CONFIG_DIR = "/var/run/linkerd/config"
"""Where the injector mounts ``linkerd-config`` (key ``values``)."""


class ComponentMissing(click.ClickException):
    """A component whose module is not part of this build."""


Main = Callable[[Sequence[str] | None], Any]


def load_component(name: str) -> Main:
    """The ``main`` of component ``name``; ``ComponentMissing`` if it is not built."""
    module_name = COMPONENTS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name is None or not module_name.startswith(e.name):
            raise
        raise ComponentMissing(
            f"component {name!r} is not available in this build of isthmus "
            f"(module {module_name} is missing)"
        ) from None
    main = getattr(module, "main", None)
    if not callable(main):
        raise ComponentMissing(f"component {name!r}: module {module_name} has no main()")
    return main  # type: ignore[no-any-return]


@click.command(
    "component",
    hidden=True,
    context_settings={"ignore_unknown_options": True, "help_option_names": []},
)
@click.argument("name", type=click.Choice(sorted(COMPONENTS)))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def component(name: str, args: tuple[str, ...]) -> None:
    """Run a mesh component (what the mesh's containers run); flags go to the component."""
    load_component(name)(list(args))


def identity_command(values: Values) -> list[str]:
    """The identity service: certifies workloads with the cluster's issuer."""
    return [
        "isthmus", "component", "identity",
        "--issuer-cert", f"{ISSUER_DIR}/tls.crt",
        "--issuer-key", f"{ISSUER_DIR}/tls.key",
        "--trust-anchors", f"{TRUST_ROOTS_DIR}/ca-bundle.crt",
        "--trust-domain", values.identity_trust_domain,
        "--control-plane-ns", values.control_plane_ns,
        "--port", str(IDENTITY_PORT),
        "--leaf-lifetime", values.issuance_lifetime,
        "--log-level", values.controller_log_level,
    ]  # fmt: skip


TOKEN_DIR = "/var/run/secrets/tokens"
"""Where destination's pod mounts its projected token for the identity service."""
TOKEN_FILE = "linkerd-identity-token"


def service_identity(service_account: str, values: Values) -> str:
    """The identity of a control-plane service account (what its TLS certificate names)."""
    ns = values.control_plane_ns
    return f"{service_account}.{ns}.serviceaccount.identity.{ns}.{values.identity_trust_domain}"


def _identity_flags(values: Values) -> list[str]:
    # How destination and policy get their serving certificates (SEC-3).
    ns = values.control_plane_ns
    return [
        "--identity-name", service_identity("linkerd-destination", values),
        "--trust-anchors", f"{TRUST_ROOTS_DIR}/ca-bundle.crt",
        "--identity-token-file", f"{TOKEN_DIR}/{TOKEN_FILE}",
        "--identity-addr",
        f"linkerd-identity-headless.{ns}.svc.{values.cluster_domain}.:{IDENTITY_PORT}",
        "--identity-svc-name", service_identity("linkerd-identity", values),
    ]  # fmt: skip


def destination_command(values: Values) -> list[str]:
    """The destination service: discovery and profiles."""
    return [
        "isthmus", "component", "destination",
        "--cluster-domain", values.cluster_domain,
        "--trust-domain", values.identity_trust_domain,
        "--control-plane-ns", values.control_plane_ns,
        "--port", str(DESTINATION_PORT),
        "--default-opaque-ports", values.opaque_ports,
        "--log-level", values.controller_log_level,
        *_identity_flags(values),
    ]  # fmt: skip


def policy_command(values: Values) -> list[str]:
    """The policy service: inbound policy for each workload port."""
    return [
        "isthmus", "component", "policy",
        "--cluster-domain", values.cluster_domain,
        "--trust-domain", values.identity_trust_domain,
        "--control-plane-ns", values.control_plane_ns,
        "--port", str(POLICY_PORT),
        "--default-inbound-policy", values.default_inbound_policy,
        "--cluster-networks", values.cluster_networks,
        "--log-level", values.controller_log_level,
        *_identity_flags(values),
    ]  # fmt: skip


def injector_command(values: Values) -> list[str]:
    """The proxy injector webhook."""
    return [
        "isthmus", "component", "injector",
        "--tls-cert", f"{WEBHOOK_TLS_DIR}/tls.crt",
        "--tls-key", f"{WEBHOOK_TLS_DIR}/tls.key",
        "--port", str(INJECTOR_PORT),
        "--admin-port", str(INJECTOR_ADMIN_PORT),
        "--config", f"{CONFIG_DIR}/values",
        "--trust-anchors", f"{TRUST_ROOTS_DIR}/ca-bundle.crt",
        "--log-level", values.controller_log_level,
    ]  # fmt: skip


def failover_command(values: Values) -> list[str]:
    """The failover controller: moves managed TrafficSplits' weight (CONF-49)."""
    return [
        "isthmus", "component", "failover",
        "--admin-addr", f"0.0.0.0:{FAILOVER_ADMIN_PORT}",
        "--log-level", values.controller_log_level,
    ]  # fmt: skip
