"""Proxy runtime test fixtures: one mesh (anchor and issuer) per module, no leaked tasks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.leaks import assert_no_leaked_tasks
from tests.proxy.proxy_support import Mesh


@pytest.fixture(scope="module")
def mesh() -> Mesh:
    return Mesh()


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    yield
    await assert_no_leaked_tasks()
