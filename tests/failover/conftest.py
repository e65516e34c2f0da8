"""Async failover tests must not leave tasks behind."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.leaks import assert_no_leaked_tasks


@pytest.fixture(autouse=True)
async def _no_leaked_tasks() -> AsyncIterator[None]:
    yield
    await assert_no_leaked_tasks()
