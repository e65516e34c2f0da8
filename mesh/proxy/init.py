"""``isthmus component proxy-init``: redirect a pod's TCP traffic through its proxy with iptables.

Run in the pod's network namespace before the application starts (the
``linkerd-init`` init container), as upstream ``linkerd2-proxy-init`` does. Two
chains in the ``nat`` table:

``PROXY_INIT_REDIRECT`` (jumped to from ``PREROUTING``), for inbound traffic:
  tcp to an ignored inbound port -> RETURN; from an ignored subnet -> RETURN;
  any other tcp -> REDIRECT to the proxy's inbound port (4143).
``PROXY_INIT_OUTPUT`` (jumped to from ``OUTPUT``), for outbound traffic:
  the proxy's own user (uid 2102) -> RETURN; out via ``lo`` -> RETURN; tcp to an
  ignored outbound port -> RETURN; any other tcp -> REDIRECT to the outbound
  port (4140).

IPv6 gets the same chains through ``ip6tables`` (subnets to ignore are split by
family), so IPv6 traffic never bypasses the proxy. Where ``ip6tables`` cannot
install them, proxy-init fails if the namespace has any IPv6 address besides
loopback (traffic could bypass the proxy), and only says so when it has none.

Ignored ports are matched with ``multiport`` (at most 15 port references per
rule; a range counts two). Every rule carries a ``proxy-init/<what>`` comment.
Running again is harmless: existing chains are flushed and refilled, and a
jump already in place is not added twice. ``plan`` is pure (the commands for a
configuration and the current ``iptables-save -t nat``); ``apply`` runs them,
``--simulate`` only prints them. Failures exit non-zero saying which command
failed and why.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from mesh.k8s.annotations import PortRanges
from mesh.proxy.envconfig import parse_port_ranges

__all__ = [
    "OUTPUT_CHAIN",
    "REDIRECT_CHAIN",
    "FirewallConfig",
    "InitError",
    "apply",
    "apply_ipv6",
    "chain_rules",
    "ipv6_addresses",
    "main",
    "plan",
]

REDIRECT_CHAIN = "PROXY_INIT_REDIRECT"
OUTPUT_CHAIN = "PROXY_INIT_OUTPUT"
MULTIPORT_LIMIT = 15
"""Port references ``-m multiport`` accepts in one rule."""
IPTABLES_TIMEOUT = 30.0
"""Seconds one iptables command may take (it waits for the xtables lock with ``-w``)."""

Command = list[str]


class InitError(Exception):
    """The rules could not be installed; the message says which command failed and why."""


@dataclass(frozen=True)
class FirewallConfig:
    """What to redirect where."""

    inbound_port: int = 4143
    outbound_port: int = 4140
    proxy_uid: int = 2102
    inbound_ports_to_ignore: PortRanges = field(default_factory=PortRanges)
    outbound_ports_to_ignore: PortRanges = field(default_factory=PortRanges)
    subnets_to_ignore: tuple[str, ...] = ()
    """Inbound traffic from these CIDRs is not redirected."""


def _comment(text: str) -> list[str]:
    return ["-m", "comment", "--comment", f"proxy-init/{text}"]


def _rule(chain: str, *match: str, target: str, comment: str) -> Command:
    """``-A chain <match> -j <target...> -m comment --comment proxy-init/<comment>``."""
    return ["-A", chain, *match, "-j", *target.split(), *_comment(comment)]


def _multiport_groups(ports: PortRanges) -> list[str]:
    """``--dports`` values, each within the multiport limit (a range counts two)."""
    groups: list[list[str]] = [[]]
    used = 0
    for lo, hi in ports.ranges:
        cost = 1 if lo == hi else 2
        if used + cost > MULTIPORT_LIMIT:
            groups.append([])
            used = 0
        groups[-1].append(str(lo) if lo == hi else f"{lo}:{hi}")
        used += cost
    return [",".join(g) for g in groups if g]


def _ignore_ports(chain: str, ports: PortRanges) -> list[Command]:
    return [
        _rule(
            chain,
            *("-p", "tcp", "-m", "multiport", "--dports", group),
            target="RETURN",
            comment=f"ignore-port-{group}",
        )
        for group in _multiport_groups(ports)
    ]


def _family(net: str) -> int:
    return ipaddress.ip_network(net, strict=False).version


def chain_rules(config: FirewallConfig, family: int = 4) -> list[Command]:
    """The rules of both chains, in order (``iptables -t nat`` arguments; ``family`` 6 for
    ``ip6tables``, which gets only the IPv6 subnets to ignore)."""
    inbound, outbound = REDIRECT_CHAIN, OUTPUT_CHAIN
    subnets = [net for net in config.subnets_to_ignore if _family(net) == family]
    return [
        *_ignore_ports(inbound, config.inbound_ports_to_ignore),
        *(
            _rule(inbound, "-s", net, target="RETURN", comment=f"ignore-subnet-{net}")
            for net in subnets
        ),
        _rule(
            inbound,
            *("-p", "tcp"),
            target=f"REDIRECT --to-port {config.inbound_port}",
            comment="redirect-all-incoming-to-proxy-port",
        ),
        _rule(
            outbound,
            *("-m", "owner", "--uid-owner", str(config.proxy_uid)),
            target="RETURN",
            comment="ignore-proxy-user-id",
        ),
        _rule(outbound, "-o", "lo", target="RETURN", comment="ignore-loopback"),
        *_ignore_ports(outbound, config.outbound_ports_to_ignore),
        _rule(
            outbound,
            *("-p", "tcp"),
            target=f"REDIRECT --to-port {config.outbound_port}",
            comment="redirect-all-outgoing-to-proxy-port",
        ),
    ]


_JUMPS = (
    ("PREROUTING", REDIRECT_CHAIN, "install-proxy-init-prerouting"),
    ("OUTPUT", OUTPUT_CHAIN, "install-proxy-init-output"),
)


def plan(config: FirewallConfig, existing: str = "", family: int = 4) -> list[Command]:
    """The ``iptables -t nat`` commands that leave the table as ``config`` wants.

    ``existing`` is the current ``iptables-save -t nat`` output: chains already
    there are flushed rather than created, and jumps already there are kept.
    ``family`` 6: the same for ``ip6tables``.
    """
    commands: list[Command] = []
    for chain in (REDIRECT_CHAIN, OUTPUT_CHAIN):
        present = re.search(rf"^:{chain}\s", existing, re.MULTILINE) is not None
        commands.append(["-F", chain] if present else ["-N", chain])
    commands += chain_rules(config, family)
    for builtin, chain, comment in _JUMPS:
        jump = re.search(rf"^-A {builtin}\s.*-j {chain}(\s|$)", existing, re.MULTILINE)
        if jump is None:
            commands.append(_rule(builtin, target=chain, comment=comment))
    return [["-t", "nat", *c] for c in commands]


Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv), capture_output=True, text=True, timeout=IPTABLES_TIMEOUT, check=False
    )


def _call(run: Runner, argv: Sequence[str]) -> str:
    try:
        result = run(argv)
    except FileNotFoundError:
        raise InitError(f"{argv[0]} not found: install iptables or pass its path") from None
    except (OSError, subprocess.TimeoutExpired) as e:
        raise InitError(f"{shlex.join(argv)}: {e}") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip() or f"exit status {result.returncode}"
        raise InitError(f"{shlex.join(argv)} failed: {detail}")
    return result.stdout


def apply(
    config: FirewallConfig,
    *,
    iptables: str = "iptables",
    iptables_save: str = "iptables-save",
    wait: bool = True,
    run: Runner = _run,
    echo: Callable[[str], None] = print,
) -> str:
    """Install the rules in the current network namespace; return the resulting nat table."""
    existing = _call(run, [iptables_save, "-t", "nat"])
    for command in plan(config, existing):
        argv = [iptables, *command, *(["-w"] if wait else [])]
        echo(shlex.join(argv))
        _call(run, argv)
    return _call(run, [iptables_save, "-t", "nat"])


def ipv6_addresses(if_inet6: str) -> list[str]:
    """The IPv6 addresses other than loopback in ``/proc/net/if_inet6`` text (link-local
    ones count: they reach the neighbours on the link)."""
    found: list[str] = []
    for line in if_inet6.splitlines():
        fields = line.split()
        if len(fields) < 6 or len(fields[0]) != 32:
            continue
        try:
            address = ipaddress.IPv6Address(int(fields[0], 16))
        except ValueError:
            continue
        if not address.is_loopback:
            found.append(f"{address}%{fields[5]}")
    return found


def _read_if_inet6() -> str:
    try:
        with open("/proc/net/if_inet6") as f:
            return f.read()
    except OSError:
        return ""  # IPv6 disabled in this kernel or namespace: nothing can use it


def apply_ipv6(
    config: FirewallConfig,
    *,
    ip6tables: str = "ip6tables",
    ip6tables_save: str = "ip6tables-save",
    wait: bool = True,
    run: Runner = _run,
    echo: Callable[[str], None] = print,
    if_inet6: Callable[[], str] = _read_if_inet6,
) -> str:
    """Install the same redirection for IPv6; return the resulting nat table.

    If it cannot be installed: ``InitError`` when the namespace has IPv6
    addresses (its IPv6 traffic would bypass the proxy), else a note and ``""``.
    """
    try:
        existing = _call(run, [ip6tables_save, "-t", "nat"])
        for command in plan(config, existing, family=6):
            argv = [ip6tables, *command, *(["-w"] if wait else [])]
            echo(shlex.join(argv))
            _call(run, argv)
        return _call(run, [ip6tables_save, "-t", "nat"])
    except InitError as e:
        in_use = ipv6_addresses(if_inet6())
        if in_use:
            raise InitError(
                f"IPv6 is in use here ({', '.join(in_use)}) but cannot be redirected to the "
                f"proxy, so its traffic would bypass it: {e}"
            ) from None
        echo(f"# IPv6 not redirected ({e}); this namespace has no IPv6 address to use")
        return ""


def _port_ranges(values: Sequence[str] | None) -> PortRanges:
    merged = ",".join(v for v in values or () if v.strip())
    try:
        return parse_port_ranges(merged)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _subnets(values: Sequence[str] | None) -> tuple[str, ...]:
    subnets: list[str] = []
    for item in ",".join(values or ()).split(","):
        if item.strip():
            try:
                subnets.append(str(ipaddress.ip_network(item.strip(), strict=False)))
            except ValueError as e:
                raise argparse.ArgumentTypeError(f"--subnets-to-ignore: {e}") from None
    return tuple(subnets)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="isthmus component proxy-init",
        description="Redirect the pod's TCP traffic through its proxy (iptables, nat table).",
    )
    parser.add_argument("--incoming-proxy-port", type=int, default=4143)
    parser.add_argument("--outgoing-proxy-port", type=int, default=4140)
    parser.add_argument("--proxy-uid", type=int, default=2102)
    ports = "comma-separated ports and lo-hi ranges; may be repeated"
    parser.add_argument("--inbound-ports-to-ignore", action="append", help=ports)
    parser.add_argument("--outbound-ports-to-ignore", action="append", help=ports)
    parser.add_argument(
        "--subnets-to-ignore", action="append", help="CIDRs whose inbound traffic is not redirected"
    )
    parser.add_argument("--simulate", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--firewall-bin-path", default="iptables")
    parser.add_argument("--firewall-save-bin-path", default="iptables-save")
    parser.add_argument("--ip6tables-bin-path", default="ip6tables")
    parser.add_argument("--ip6tables-save-bin-path", default="ip6tables-save")
    parser.add_argument("--no-wait-flag", action="store_true", help="do not pass -w to iptables")
    return parser


def config_from(args: argparse.Namespace) -> FirewallConfig:
    """The configuration the flags describe; ``ArgumentTypeError`` for a bad value."""
    for name in ("incoming_proxy_port", "outgoing_proxy_port"):
        if not 0 < getattr(args, name) < 65536:
            raise argparse.ArgumentTypeError(f"--{name.replace('_', '-')} must be 1-65535")
    if args.proxy_uid < 1:
        raise argparse.ArgumentTypeError("--proxy-uid must be a non-root user id")
    return FirewallConfig(
        inbound_port=args.incoming_proxy_port,
        outbound_port=args.outgoing_proxy_port,
        proxy_uid=args.proxy_uid,
        inbound_ports_to_ignore=_port_ranges(args.inbound_ports_to_ignore),
        outbound_ports_to_ignore=_port_ranges(args.outbound_ports_to_ignore),
        subnets_to_ignore=_subnets(args.subnets_to_ignore),
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Install (or with ``--simulate`` print) the redirection; exit 1 with a message on failure."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        config = config_from(args)
    except argparse.ArgumentTypeError as e:
        parser.error(str(e))
    if args.simulate:
        wait = [] if args.no_wait_flag else ["-w"]
        for command in plan(config):
            print(shlex.join([args.firewall_bin_path, *command, *wait]))
        for command in plan(config, family=6):
            print(shlex.join([args.ip6tables_bin_path, *command, *wait]))
        return
    try:
        table = apply(
            config,
            iptables=args.firewall_bin_path,
            iptables_save=args.firewall_save_bin_path,
            wait=not args.no_wait_flag,
        )
        table += apply_ipv6(
            config,
            ip6tables=args.ip6tables_bin_path,
            ip6tables_save=args.ip6tables_save_bin_path,
            wait=not args.no_wait_flag,
        )
    except InitError as e:
        print(f"proxy-init: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    print(table, end="")


if __name__ == "__main__":
    main()
