"""Installing the control plane: the manifests ``isthmus install`` prints, and their parts.

``values`` holds the settings, ``credentials`` the identity and webhook secrets,
``rbac`` and ``controlplane`` build the objects, ``render`` assembles them (and
the CRDs from ``mesh.crds``), ``components`` says how each container runs its
component, ``target`` picks the cluster for commands that talk to one, and
``cli`` is the command line. All but ``cli`` and ``target`` are pure.

The package's names are loaded on first use (PEP 562): every container runs
``isthmus component <name>`` through ``components``, and a sidecar proxy must
not load the manifest renderer (YAML, Kubernetes models, key generation) to
start. Type checkers see the real imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mesh.lazy import exports

if TYPE_CHECKING:
    from mesh.install.credentials import (
        IdentityError,
        IdentityMaterial,
        WebhookCert,
        create_webhook_cert,
        generate_identity,
        load_identity,
    )
    from mesh.install.render import (
        dump_all,
        load_all,
        render_crds,
        render_install,
        uninstall_objects,
    )
    from mesh.install.values import Values

_SOURCES: dict[str, tuple[str, ...]] = {
    "credentials": (
        "IdentityError",
        "IdentityMaterial",
        "WebhookCert",
        "create_webhook_cert",
        "generate_identity",
        "load_identity",
    ),
    "render": ("dump_all", "load_all", "render_crds", "render_install", "uninstall_objects"),
    "values": ("Values",),
}

__all__ = [
    "IdentityError",
    "IdentityMaterial",
    "Values",
    "WebhookCert",
    "create_webhook_cert",
    "dump_all",
    "generate_identity",
    "load_all",
    "load_identity",
    "render_crds",
    "render_install",
    "uninstall_objects",
]


if not TYPE_CHECKING:  # hidden from type checkers, which would otherwise accept any name
    __getattr__, __dir__ = exports(__name__, _SOURCES, globals(), __all__)
