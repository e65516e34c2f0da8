"""Installing the control plane: the manifests ``isthmus install`` prints, and their parts.

``values`` holds the settings, ``credentials`` the identity and webhook secrets,
``rbac`` and ``controlplane`` build the objects, ``render`` assembles them (and
the CRDs from ``mesh.crds``), ``components`` says how each container runs its
component, ``target`` picks the cluster for commands that talk to one, and
``cli`` is the command line. All but ``cli`` and ``target`` are pure.
"""

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
