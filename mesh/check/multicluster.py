"""``check --multicluster``: the links of this (source) cluster, judged from one snapshot.

``MulticlusterSnapshot`` is what ``mcfetch`` read: the Link CRD, this cluster's
trust anchors, and per Link (``LinkState``) its credentials, whether the target's
API answered to them, the target's trust anchors, the mirror controller, the
gateway's liveness as the controller reports it, and the link's mirrors.
``multicluster_checks`` turns it into ``Result``s; every failure names the
link and what to run. Failures that clear by themselves (a controller starting,
a gateway not yet probed alive) are retryable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.serialization import Encoding

from mesh.check.snapshot import DeploymentState, Result, Status
from mesh.crds import LINK_CRD
from mesh.identity import PemFile
from mesh.identity.pem import CertError, load_certificates

__all__ = [
    "CATEGORY",
    "LinkState",
    "MirrorState",
    "MulticlusterSnapshot",
    "multicluster_checks",
    "shared_anchors",
]

CATEGORY = "linkerd-multicluster"
_STORED = "v1alpha3"


@dataclass(frozen=True)
class MirrorState:
    """A gateway-mode mirror Service of a link: its Endpoints' ready addresses, if any."""

    has_endpoints: bool
    ready_addresses: int


@dataclass(frozen=True)
class LinkState:
    name: str
    target: str
    gateway: bool
    """The Link names a gateway (``gatewayAddress`` set)."""
    credentials: bool
    """The credentials Secret exists and holds a kubeconfig."""
    remote_error: str | None = None
    """Why the target's API did not answer to the credentials (``None``: it did)."""
    remote_anchors: bytes | None = None
    """The target's trust anchors (PEM); ``None`` if they could not be read."""
    remote_anchors_error: str = ""
    controller: DeploymentState | None = None
    gateway_alive: bool | None = None
    """As the mirror controller reports it; ``None``: not known (``gateway_error`` says why)."""
    gateway_error: str = ""
    mirrors: Mapping[str, MirrorState] = field(default_factory=dict)
    """``namespace/name`` -> state, for the link's gateway-mode mirrors."""


@dataclass(frozen=True)
class MulticlusterSnapshot:
    link_crd_versions: tuple[str, ...] | None = None
    """Versions the Link CRD serves; ``None``: it is not installed."""
    local_anchors: bytes | None = None
    links: Sequence[LinkState] = ()
    error: str | None = None
    """Set when the cluster could not be read; nothing else is then known."""


def _fingerprints(pem: bytes, where: str) -> set[str]:
    certs = load_certificates(PemFile(where, pem))
    return {hashlib.sha256(c.public_bytes(Encoding.DER)).hexdigest() for c in certs}


def shared_anchors(local: bytes, remote: bytes) -> bool:
    """Whether two trust-anchor bundles share a certificate; ``CertError`` if one is not PEM."""
    return bool(
        _fingerprints(local, "local trust roots") & _fingerprints(remote, "remote trust roots")
    )


def _result(description: str, status: Status = Status.OK, message: str = "", hint: str = "", *,
            retryable: bool = False) -> Result:  # fmt: skip
    return Result(CATEGORY, description, status, message, hint, retryable)


def _relink(link: LinkState) -> str:
    return (
        f"isthmus --context <{link.target}> multicluster link --cluster-name {link.target} "
        "| kubectl apply -f -"
    )


def _link_results(link: LinkState, local_anchors: bytes | None) -> list[Result]:
    name = link.name
    results: list[Result] = []
    if not link.credentials:
        return [
            _result(
                f"Link {name}: credentials exist",
                Status.FAIL,
                f"Secret cluster-credentials-{name} is missing or has no kubeconfig",
                _relink(link),
            )
        ]
    results.append(_result(f"Link {name}: credentials exist"))
    description = f"Link {name}: the target's API server answers to the credentials"
    if link.remote_error is not None:
        results.append(
            _result(
                description,
                Status.FAIL,
                link.remote_error,
                "re-link with the address this cluster reaches the target's API server at: "
                f"{_relink(link)} with --api-server-address",
            )
        )
    else:
        results.append(_result(description))
        results.append(_anchor_result(link, local_anchors))
    results.append(_controller_result(link))
    if link.gateway:
        results.append(_gateway_result(link))
        results.append(_mirrors_result(link))
    return results


def _anchor_result(link: LinkState, local_anchors: bytes | None) -> Result:
    description = f"Link {link.name}: clusters share trust anchors"
    if link.remote_anchors is None or local_anchors is None:
        missing = "the target's" if link.remote_anchors is None else "this cluster's"
        return _result(
            description,
            Status.WARN,
            f"cannot read {missing} trust anchors {link.remote_anchors_error}".strip(),
            "re-apply `isthmus multicluster install` on the target (its remote-access role "
            "reads linkerd-identity-trust-roots)",
        )
    try:
        shared = shared_anchors(local_anchors, link.remote_anchors)
    except CertError as e:
        return _result(description, Status.FAIL, str(e), "repair linkerd-identity-trust-roots")
    if not shared:
        return _result(
            description,
            Status.FAIL,
            f"{link.target}'s trust anchors share no certificate with this cluster's, so their "
            "proxies cannot authenticate each other",
            "install both control planes with one trust anchor: isthmus identity create-anchor, "
            "then isthmus install --identity-trust-anchors-file ... in each cluster",
        )
    return _result(description)


def _controller_result(link: LinkState) -> Result:
    description = f"Link {link.name}: mirror controller is running"
    deploy = f"linkerd-multicluster/linkerd-service-mirror-{link.name}"
    if link.controller is None:
        return _result(description, Status.FAIL, f"Deployment {deploy} is missing", _relink(link))
    if link.controller.ready < max(link.controller.desired, 1):
        return _result(
            description,
            Status.FAIL,
            f"Deployment {deploy} has {link.controller.ready}/{link.controller.desired} ready",
            f"kubectl -n linkerd-multicluster describe deploy/linkerd-service-mirror-{link.name}",
            retryable=True,
        )
    return _result(description)


def _gateway_result(link: LinkState) -> Result:
    description = f"Link {link.name}: gateway is alive"
    if link.gateway_alive:
        return _result(description)
    message = (
        link.gateway_error
        if link.gateway_alive is None
        else f"the mirror controller's probes of {link.target}'s gateway fail"
    )
    return _result(
        description,
        Status.FAIL,
        message,
        f"check the gateway in {link.target} (kubectl -n linkerd-multicluster get "
        "svc,pods) and that this cluster reaches the Link's gatewayAddress; "
        f"kubectl -n linkerd-multicluster logs deploy/linkerd-service-mirror-{link.name}",
        retryable=True,
    )


def _mirrors_result(link: LinkState) -> Result:
    description = f"Link {link.name}: mirror services have endpoints"
    without = sorted(n for n, m in link.mirrors.items() if not m.has_endpoints)
    unready = sorted(
        n for n, m in link.mirrors.items() if m.has_endpoints and m.ready_addresses == 0
    )
    if not without and not (link.gateway_alive and unready):
        return _result(description)
    problems = []
    if without:
        problems.append(f"no Endpoints: {', '.join(without)}")
    if link.gateway_alive and unready:
        problems.append(f"no ready addresses although the gateway is alive: {', '.join(unready)}")
    return _result(
        description,
        Status.FAIL,
        "; ".join(problems),
        f"kubectl -n linkerd-multicluster logs deploy/linkerd-service-mirror-{link.name}",
        retryable=True,
    )


def multicluster_checks(s: MulticlusterSnapshot) -> list[Result]:
    """The multicluster results, in Linkerd's order: CRD, then each Link's chain."""
    if s.error is not None:
        return [
            _result(
                "can read the multicluster objects",
                Status.FAIL,
                s.error,
                "check --context/--kubeconfig and that the user may read linkerd-multicluster",
            )
        ]
    description = "Link CRD exists"
    if s.link_crd_versions is None or _STORED not in s.link_crd_versions:
        seen = "is missing" if s.link_crd_versions is None else "does not serve v1alpha3"
        return [
            _result(
                description,
                Status.FAIL,
                f"{LINK_CRD} {seen}",
                "isthmus multicluster install | kubectl apply -f -",
            )
        ]
    results = [_result(description)]
    if not s.links:
        results.append(_result("Links are present (none: this cluster mirrors nothing)"))
    for link in s.links:
        results += _link_results(link, s.local_anchors)
    return results
