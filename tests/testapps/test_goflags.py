"""Go's flag and duration syntax, as the Go tools' stand-ins read it."""

from __future__ import annotations

import pytest

from mesh.testapps.goflags import (
    Flag,
    FlagError,
    format_duration,
    parse_duration,
    parse_flags,
)

FLAGS = (
    Flag("qps", "1", "q"),
    Flag("noreuse", "false", "n", boolean=True),
    Flag("header", "", "h", repeated=True),
)


@pytest.mark.parametrize(
    ("argv", "qps", "noreuse", "rest"),
    [
        (["-qps", "10", "http://x"], "10", "false", ["http://x"]),
        (["--qps=10", "http://x"], "10", "false", ["http://x"]),
        (["-noreuse", "http://x", "-qps", "5"], "1", "true", ["http://x", "-qps", "5"]),
        (["-noreuse=false", "--", "-x"], "1", "false", ["-x"]),
        (["http://x"], "1", "false", ["http://x"]),
    ],
)
def test_go_flag_rules(argv: list[str], qps: str, noreuse: str, rest: list[str]) -> None:
    p = parse_flags(FLAGS, argv)
    assert (p.values["qps"], p.values["noreuse"], p.args) == (qps, noreuse, rest)


def test_repeated_flags_collect() -> None:
    p = parse_flags(FLAGS, ["-header", "a: 1", "--header=b: 2", "u"])
    assert p.lists["header"] == ["a: 1", "b: 2"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-nope", "u"], "flag provided but not defined: -nope"),
        (["-qps"], "flag needs an argument: -qps"),
        (["-noreuse=maybe"], 'invalid boolean value "maybe"'),
        (["---qps=1"], "bad flag syntax"),
    ],
)
def test_go_flag_errors(argv: list[str], message: str) -> None:
    with pytest.raises(FlagError, match=message):
        parse_flags(FLAGS, argv)


@pytest.mark.parametrize(
    ("text", "seconds", "shown"),
    [
        ("10s", 10.0, "10s"),
        ("1m", 60.0, "1m0s"),
        ("1m30s", 90.0, "1m30s"),
        ("500ms", 0.5, "500ms"),
        ("1.5s", 1.5, "1.5s"),
        ("2h", 7200.0, "2h0m0s"),
    ],
)
def test_durations_round_trip_as_go_prints_them(text: str, seconds: float, shown: str) -> None:
    assert parse_duration(text) == pytest.approx(seconds)
    assert format_duration(seconds) == shown


@pytest.mark.parametrize("text", ["", "10", "s", "1x", "1.s2"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(FlagError, match="invalid duration"):
        parse_duration(text)
