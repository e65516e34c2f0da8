"""What injection needs to know about the mesh it injects into.

``InjectConfig`` is the install's ``Values`` plus the trust anchors, and who
is injecting (``linkerd.io/created-by``). It is read from what install wrote:
the ``values`` key of the ``linkerd-config`` ConfigMap and the ``ca-bundle.crt``
of ``linkerd-identity-trust-roots``, either mounted as files (the injector) or
fetched from the cluster (``isthmus inject --manual``).
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from mesh.install.values import Values, package_version

__all__ = ["InjectConfig", "cli_created_by", "injector_created_by"]


def cli_created_by() -> str:
    return f"isthmus/cli {package_version()}"


def injector_created_by() -> str:
    return f"isthmus/proxy-injector {package_version()}"


@dataclass(frozen=True)
class InjectConfig:
    """The mesh's settings, its trust anchors (PEM) and the injecting tool's name."""

    values: Values
    trust_anchors_pem: str
    created_by: str

    @classmethod
    def from_texts(cls, values_yaml: str, trust_anchors_pem: str, created_by: str) -> InjectConfig:
        """Parse ``linkerd-config``'s ``values``; ``ValueError`` says what is wrong.

        Unknown keys are ignored, so a newer install's config still reads.
        """
        try:
            tree = yaml.safe_load(values_yaml) or {}
        except yaml.YAMLError as e:
            raise ValueError(f"linkerd-config values are not YAML: {e}") from None
        if not isinstance(tree, dict):
            raise ValueError("linkerd-config values are not a mapping")
        values = Values.from_config(tree, strict=False)
        return cls(values=values, trust_anchors_pem=trust_anchors_pem, created_by=created_by)
