"""Command lines the way Go programs read them (pure): Go's ``flag`` and ``time.Duration``.

The stand-ins for Go tools (``slow_cooker``, ``bb``) must accept exactly what their
users type. Go's ``flag`` package rules, kept here:
- ``-name`` and ``--name`` are the same flag; a value is ``-name=v`` or ``-name v``;
- a boolean flag takes no separate value (only ``-name=false``);
- parsing stops at the first argument that is not a flag, or after ``--``;
- an unknown flag is an error (``flag provided but not defined: -x``).
Durations are Go's: a sequence of decimal numbers with units ``ns us µs ms s m h``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field


class FlagError(ValueError):
    """A command line Go's flag package would refuse; ``str()`` is its message."""


@dataclass(frozen=True)
class Flag:
    name: str
    default: str
    usage: str
    boolean: bool = False
    repeated: bool = False


@dataclass
class Parsed:
    values: dict[str, str] = field(default_factory=dict)
    lists: dict[str, list[str]] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)


_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def parse_bool(text: str) -> bool:
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise FlagError(f'invalid boolean value "{text}"')


def parse_flags(flags: Sequence[Flag], argv: Sequence[str]) -> Parsed:
    """Go's ``flag.Parse`` over ``argv`` (without the program name)."""
    known = {f.name: f for f in flags}
    out = Parsed(values={f.name: f.default for f in flags if not f.repeated})
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if len(arg) < 2 or not arg.startswith("-"):
            break
        body = arg[2:] if arg.startswith("--") else arg[1:]
        if not body or body.startswith("-") or body.startswith("="):
            raise FlagError(f"bad flag syntax: {arg}")
        name, has_value, value = body.partition("=")
        flag = known.get(name)
        if flag is None:
            raise FlagError(f"flag provided but not defined: -{name}")
        i += 1
        if flag.boolean:
            if has_value:
                try:
                    parse_bool(value)
                except FlagError:
                    raise FlagError(
                        f'invalid boolean value "{value}" for -{name}: parse error'
                    ) from None
            else:
                value = "true"
        elif not has_value:
            if i >= len(argv):
                raise FlagError(f"flag needs an argument: -{name}")
            value = argv[i]
            i += 1
        if flag.repeated:
            out.lists.setdefault(name, []).append(value)
        else:
            out.values[name] = value
    out.args = list(argv[i:])
    return out


def usage(program: str, synopsis: str, flags: Sequence[Flag]) -> str:
    """A usage text in the shape of Go's ``flag.PrintDefaults``."""
    lines = [f"Usage: {program} {synopsis}"]
    for f in sorted(flags, key=lambda f: f.name):
        kind = "" if f.boolean else " value"
        lines.append(f"  -{f.name}{kind}")
        default = f" (default {f.default})" if f.default not in ("", "0", "false") else ""
        lines.append(f"    \t{f.usage}{default}")
    return "\n".join(lines) + "\n"


_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}
_UNITS["h"] = 3600.0
_PART = re.compile(r"([0-9]*\.?[0-9]*)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Go's ``time.ParseDuration``, in seconds."""
    s = text
    sign = 1.0
    if s[:1] in "+-" and s:
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise FlagError(f'time: invalid duration "{text}"')
    total, pos = 0.0, 0
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None or m.group(1) in ("", "."):
            raise FlagError(f'time: invalid duration "{text}"')
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return sign * total


def format_duration(seconds: float) -> str:
    """Go's ``Duration.String`` for the durations a command line gives (ns precision)."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _trim(ns / size) + unit
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    secs = _trim(rest / 1e9) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}"
    if minutes:
        return f"{sign}{minutes}m{secs}"
    return sign + secs


def _trim(value: float) -> str:
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text or "0"
