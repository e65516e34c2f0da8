"""The proxy's event loop choice: uvloop unless the environment says asyncio."""

from __future__ import annotations

import asyncio

import pytest

from mesh.proxy import eventloop


def test_uvloop_is_the_default_and_asyncio_can_be_forced() -> None:
    assert eventloop.loop_name({}) == "uvloop"
    assert eventloop.loop_name({eventloop.ENV: "uvloop"}) == "uvloop"
    assert eventloop.loop_name({eventloop.ENV: "asyncio"}) == "asyncio"
    assert eventloop.loop_factory({eventloop.ENV: " AsyncIO "}) is None


def test_a_bad_choice_is_refused() -> None:
    with pytest.raises(ValueError, match=eventloop.ENV):
        eventloop.loop_factory({eventloop.ENV: "trio"})


def test_run_uses_the_chosen_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    async def loop_type() -> str:
        return type(asyncio.get_running_loop()).__module__.split(".")[0]

    monkeypatch.delenv(eventloop.ENV, raising=False)
    assert eventloop.run(loop_type()) == "uvloop"
    monkeypatch.setenv(eventloop.ENV, "asyncio")
    assert eventloop.run(loop_type()) == "asyncio"
