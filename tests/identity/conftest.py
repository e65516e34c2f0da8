"""Fixtures for the identity core: one trust anchor and issuer per session, and an impostor."""

from __future__ import annotations

import pytest

from mesh.identity import Credentials, create_anchor, create_issuer
from tests.identity.support import NOW, TRUST_DOMAIN


@pytest.fixture(scope="session")
def anchor() -> Credentials:
    return create_anchor(TRUST_DOMAIN, now=NOW)


@pytest.fixture(scope="session")
def issuer(anchor: Credentials) -> Credentials:
    return create_issuer(anchor, TRUST_DOMAIN, now=NOW)


@pytest.fixture(scope="session")
def impostor_anchor() -> Credentials:
    """Another anchor with the same name as ``anchor`` but its own key (another mesh)."""
    return create_anchor(TRUST_DOMAIN, now=NOW)


@pytest.fixture(scope="session")
def impostor_issuer(impostor_anchor: Credentials) -> Credentials:
    return create_issuer(impostor_anchor, TRUST_DOMAIN, now=NOW)
