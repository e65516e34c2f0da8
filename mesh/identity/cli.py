"""``isthmus identity``: create and check trust anchors and issuers.

The only I/O of the identity package outside the identity service: this reads
and writes the PEM files and the clock, and leaves the rest to the pure core.
Files are never overwritten without ``--force``; key files are mode 0600.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from mesh.identity.certs import check_issuer, create_anchor, create_issuer, load_credentials
from mesh.identity.names import DEFAULT_CONTROL_PLANE_NS, check_label, check_subdomain
from mesh.identity.pem import PemFile

__all__ = ["Duration", "identity"]

_KEY_MODE = 0o600
_CERT_MODE = 0o644
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([hms])")
_UNITS = {"h": "hours", "m": "minutes", "s": "seconds"}


class Duration(click.ParamType[timedelta]):
    """A duration written as ``step`` and Go write them: ``87600h``, ``1h30m``, ``90s``."""

    name = "duration"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta:
        if isinstance(value, timedelta):
            return value
        text = str(value).strip()
        parts = _DURATION_PART.findall(text)
        if not text or "".join(n + u for n, u in parts) != text:
            self.fail(f"{text!r} is not a duration like 87600h, 1h30m or 90s", param, ctx)
        total = sum((timedelta(**{_UNITS[u]: float(n)}) for n, u in parts), timedelta())
        if total <= timedelta(0):
            self.fail(f"{text!r} is not a positive duration", param, ctx)
        return total


def _dns_name(
    check: Callable[[str, str], None], what: str
) -> Callable[[click.Context, click.Parameter, str], str]:
    """A click callback that turns ``check``'s ``ValueError`` into a usage error."""

    def validate(ctx: click.Context, param: click.Parameter, value: str) -> str:
        try:
            check(what, value)
        except ValueError as e:
            raise click.BadParameter(str(e)) from None
        return value

    return validate


_trust_domain = click.option(
    "--trust-domain",
    required=True,
    callback=_dns_name(check_subdomain, "trust domain"),
    help="The trust domain identities end with (e.g. cluster.local); "
    "not necessarily the cluster domain.",
)
_out_dir = click.option(
    "--out-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write the files into; created if missing.",
)
_force = click.option("--force", is_flag=True, help="Overwrite files that already exist.")
_pem_in = click.Path(exists=True, dir_okay=False, path_type=Path)


def _read(path: Path) -> PemFile:
    return PemFile(str(path), path.read_bytes())


def _write(out_dir: Path, files: dict[str, tuple[bytes, int]], *, force: bool) -> None:
    """Write every file or, unless ``force``, none if any already exists."""
    out_dir.mkdir(parents=True, exist_ok=True)
    existing = [str(out_dir / name) for name in files if (out_dir / name).exists()]
    if existing and not force:
        raise click.ClickException(
            f"refusing to overwrite {', '.join(existing)}; pass --force to replace"
        )
    for name, (data, mode) in files.items():
        path = out_dir / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
        click.echo(f"wrote {path}")


@click.group()
def identity() -> None:
    """Create and check the trust anchor and issuers that mesh identity rests on.

    One trust anchor is shared by all clusters; each cluster gets its own issuer
    signed by it. Files made with step or openssl are accepted too.
    """


@identity.command("create-anchor")
@_trust_domain
@_out_dir
@click.option(
    "--validity",
    type=Duration(),
    default="87600h",
    show_default=True,
    help="How long the anchor is valid (h, m, s units, as step's --not-after).",
)
@click.option(
    "--common-name", help="Subject common name of the anchor [default: root.<trust-domain>]."
)
@_force
def create_anchor_command(
    trust_domain: str, out_dir: Path, validity: timedelta, common_name: str | None, force: bool
) -> None:
    """Write a new self-signed trust anchor (ECDSA P-256) to ca.crt and ca.key."""
    try:
        anchor = create_anchor(
            trust_domain, now=datetime.now(UTC), validity=validity, common_name=common_name
        )
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    files = {
        "ca.crt": (anchor.certificate_pem(), _CERT_MODE),
        "ca.key": (anchor.key_pem(), _KEY_MODE),
    }
    _write(out_dir, files, force=force)


@identity.command("create-issuer")
@click.option("--anchor-cert", required=True, type=_pem_in, help="PEM certificate of the anchor.")
@click.option("--anchor-key", required=True, type=_pem_in, help="PEM private key of the anchor.")
@_trust_domain
@click.option(
    "--control-plane-ns",
    default=DEFAULT_CONTROL_PLANE_NS,
    show_default=True,
    callback=_dns_name(check_label, "control-plane namespace"),
    help="Namespace of the control plane; the issuer is identity.<ns>.<trust-domain>.",
)
@_out_dir
@click.option(
    "--validity",
    type=Duration(),
    default="8760h",
    show_default=True,
    help="How long the issuer is valid (h, m, s units); must end before the anchor does.",
)
@_force
def create_issuer_command(
    anchor_cert: Path,
    anchor_key: Path,
    trust_domain: str,
    control_plane_ns: str,
    out_dir: Path,
    validity: timedelta,
    force: bool,
) -> None:
    """Write a new issuer (intermediate CA) signed by the anchor to issuer.crt and issuer.key."""
    now = datetime.now(UTC)
    try:
        anchor = load_credentials(_read(anchor_cert), _read(anchor_key), now=now)
        issuer = create_issuer(
            anchor, trust_domain, now=now, control_plane_ns=control_plane_ns, validity=validity
        )
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    files = {
        "issuer.crt": (issuer.certificate_pem(), _CERT_MODE),
        "issuer.key": (issuer.key_pem(), _KEY_MODE),
    }
    _write(out_dir, files, force=force)


@identity.command("check")
@click.option("--anchors", required=True, type=_pem_in, help="PEM bundle of the trust anchor(s).")
@click.option("--issuer-cert", required=True, type=_pem_in, help="PEM certificate of the issuer.")
@click.option("--issuer-key", required=True, type=_pem_in, help="PEM private key of the issuer.")
def check_command(anchors: Path, issuer_cert: Path, issuer_key: Path) -> None:
    """Check that the issuer is a valid CA chaining to the anchors, with a matching key.

    Prints OK, or each problem (naming the file) and exits with status 1.
    """
    problems = check_issuer(
        _read(anchors), _read(issuer_cert), _read(issuer_key), now=datetime.now(UTC)
    )
    if not problems:
        click.echo("OK")
        return
    for problem in problems:
        click.echo(str(problem))
    click.get_current_context().exit(1)
