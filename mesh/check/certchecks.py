"""Certificate checks: trust anchors, the identity issuer and the injector webhook's TLS.

Pure functions of a ``ClusterSnapshot``, judged at its ``now`` with the identity
module's own rules (the same ones the identity service applies), so ``check``
fails on exactly what would stop the mesh from issuing certificates. Anything
that expires within ``EXPIRY_WARNING`` is a warning.
"""

from __future__ import annotations

from datetime import timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from mesh.check.snapshot import ClusterSnapshot, Result, Status
from mesh.identity import CertError, PemFile, check_issuer, load_certificates
from mesh.identity.trust import ca_problem, describe, validity_problem
from mesh.install.controlplane import (
    ISSUER_SECRET,
    TRUST_ROOTS_CONFIG_MAP,
    WEBHOOK_CONFIG,
    WEBHOOK_SECRET,
)

__all__ = ["EXPIRY_WARNING", "issuer_valid", "trust_roots_valid", "webhook_valid"]

EXPIRY_WARNING = timedelta(days=60)
"""Certificates ending sooner than this are reported as warnings."""

_IDENTITY = "linkerd-identity"
_WEBHOOK = "linkerd-webhooks-and-apisvc-tls"
_REINSTALL = "isthmus install ... | kubectl apply -f -"


def _anchors(s: ClusterSnapshot) -> PemFile | None:
    data = s.config_maps.get(TRUST_ROOTS_CONFIG_MAP, {}).get("ca-bundle.crt")
    if data is None:
        return None
    return PemFile(f"ConfigMap {s.control_plane_ns}/{TRUST_ROOTS_CONFIG_MAP}", data.encode())


def _expiry(
    category: str, description: str, certs: list[x509.Certificate], s: ClusterSnapshot, hint: str
) -> Result:
    soonest = min(certs, key=lambda c: c.not_valid_after_utc)
    left = soonest.not_valid_after_utc - s.now
    if left < EXPIRY_WARNING:
        return Result(
            category,
            description,
            Status.WARN,
            f"{describe(soonest)} expires at {soonest.not_valid_after_utc.isoformat()} "
            f"({max(left.days, 0)} days left)",
            hint,
        )
    return Result(category, description, Status.OK)


def trust_roots_valid(s: ClusterSnapshot) -> list[Result]:
    """The trust roots ConfigMap exists and holds CA certificates valid now."""
    ns = s.control_plane_ns
    anchors = _anchors(s)
    inspect = f"kubectl -n {ns} get configmap {TRUST_ROOTS_CONFIG_MAP} -o yaml"
    if anchors is None:
        return [
            Result(
                _IDENTITY,
                "trust roots config map exists",
                Status.FAIL,
                f"ConfigMap {ns}/{TRUST_ROOTS_CONFIG_MAP} (key ca-bundle.crt) does not exist",
                f"re-apply the control plane: {_REINSTALL}",
            )
        ]
    results = [Result(_IDENTITY, "trust roots config map exists", Status.OK)]
    description = "trust anchors are valid"
    try:
        roots = load_certificates(anchors)
    except CertError as e:
        return [*results, Result(_IDENTITY, description, Status.FAIL, str(e), inspect)]
    problems = [
        f"{describe(root)}: {problem}"
        for root in roots
        for problem in (validity_problem(root, s.now), ca_problem(root))
        if problem
    ]
    if problems:
        hint = f"install with valid anchors (--identity-trust-anchors-file); {inspect}"
        return [*results, Result(_IDENTITY, description, Status.FAIL, "; ".join(problems), hint)]
    results.append(Result(_IDENTITY, description, Status.OK))
    results.append(
        _expiry(
            _IDENTITY,
            "trust anchors are valid for at least 60 days",
            roots,
            s,
            "rotate the trust anchors: https://linkerd.io/2/tasks/manually-rotating-control-plane-tls-credentials/",
        )
    )
    return results


def issuer_valid(s: ClusterSnapshot) -> list[Result]:
    """The issuer secret holds a CA valid now, chained to the trust anchors, with its key."""
    ns = s.control_plane_ns
    secret = s.secrets.get(ISSUER_SECRET)
    if secret is None:
        return [
            Result(
                _IDENTITY,
                "issuer secret exists",
                Status.FAIL,
                f"Secret {ns}/{ISSUER_SECRET} does not exist",
                f"re-apply the control plane: {_REINSTALL}",
            )
        ]
    results = [Result(_IDENTITY, "issuer secret exists", Status.OK)]
    description = "issuer certificate is valid and issued by the trust anchors"
    where = f"Secret {ns}/{ISSUER_SECRET}"
    anchors = _anchors(s) or PemFile(f"{where} ca.crt", secret.get("ca.crt", b""))
    cert = PemFile(f"{where} tls.crt", secret.get("tls.crt", b""))
    key = PemFile(f"{where} tls.key", secret.get("tls.key", b""))
    problems = check_issuer(anchors, cert, key, now=s.now)
    if problems:
        hint = (
            "make a new issuer with `isthmus identity create-issuer` from the shared anchor and "
            "re-install with --identity-issuer-certificate-file/--identity-issuer-key-file"
        )
        message = "; ".join(str(p) for p in problems)
        return [*results, Result(_IDENTITY, description, Status.FAIL, message, hint)]
    results.append(Result(_IDENTITY, description, Status.OK))
    results.append(
        _expiry(
            _IDENTITY,
            "issuer certificate is valid for at least 60 days",
            load_certificates(cert)[:1],
            s,
            "rotate the issuer: isthmus identity create-issuer, then re-apply install",
        )
    )
    return results


def _signs(ca: x509.Certificate, cert: x509.Certificate) -> bool:
    if ca == cert:
        return True
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def webhook_valid(s: ClusterSnapshot) -> list[Result]:
    """The injector webhook is registered and trusts the certificate the injector serves."""
    ns = s.control_plane_ns
    reapply = f"re-apply the control plane: {_REINSTALL}"
    bundle = s.webhook_ca_bundles.get(WEBHOOK_CONFIG)
    if bundle is None:
        return [
            Result(
                _WEBHOOK,
                "proxy-injector webhook configuration exists",
                Status.FAIL,
                f"MutatingWebhookConfiguration {WEBHOOK_CONFIG} does not exist",
                reapply,
            )
        ]
    results = [Result(_WEBHOOK, "proxy-injector webhook configuration exists", Status.OK)]
    description = "proxy-injector webhook caBundle matches its serving certificate"
    secret = s.secrets.get(WEBHOOK_SECRET)
    if secret is None:
        message = f"Secret {ns}/{WEBHOOK_SECRET} does not exist"
        return [*results, Result(_WEBHOOK, description, Status.FAIL, message, reapply)]
    try:
        cas = load_certificates(PemFile(f"{WEBHOOK_CONFIG} caBundle", bundle))
        served = load_certificates(
            PemFile(f"Secret {ns}/{WEBHOOK_SECRET}", secret.get("tls.crt", b""))
        )[0]
    except CertError as e:
        return [*results, Result(_WEBHOOK, description, Status.FAIL, str(e), reapply)]
    if not any(_signs(ca, served) for ca in cas):
        message = f"the caBundle of {WEBHOOK_CONFIG} does not verify {describe(served)}"
        hint = f"apply the webhook configuration and Secret from the same install: {_REINSTALL}"
        return [*results, Result(_WEBHOOK, description, Status.FAIL, message, hint)]
    problem = validity_problem(served, s.now)
    if problem:
        message = f"the proxy-injector certificate {problem}"
        return [*results, Result(_WEBHOOK, description, Status.FAIL, message, reapply)]
    results.append(Result(_WEBHOOK, description, Status.OK))
    results.append(
        _expiry(
            _WEBHOOK,
            "proxy-injector certificate is valid for at least 60 days",
            [served],
            s,
            f"renew it: {_REINSTALL}",
        )
    )
    return results
