"""proxy-init: the iptables rules as a pure plan, and (as root) applied in a throwaway netns."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from mesh.k8s.annotations import PortRanges
from mesh.proxy.init import (
    FirewallConfig,
    InitError,
    apply,
    apply_ipv6,
    chain_rules,
    ipv6_addresses,
    main,
    plan,
)

ROOT = Path(__file__).resolve().parents[2]
INJECTED = FirewallConfig(inbound_ports_to_ignore=PortRanges(((4190, 4191),)))


def test_the_chains_follow_linkerd_proxy_init() -> None:
    rules = [" ".join(r) for r in chain_rules(INJECTED)]
    assert rules == [
        "-A PROXY_INIT_REDIRECT -p tcp -m multiport --dports 4190:4191 -j RETURN"
        " -m comment --comment proxy-init/ignore-port-4190:4191",
        "-A PROXY_INIT_REDIRECT -p tcp -j REDIRECT --to-port 4143"
        " -m comment --comment proxy-init/redirect-all-incoming-to-proxy-port",
        "-A PROXY_INIT_OUTPUT -m owner --uid-owner 2102 -j RETURN"
        " -m comment --comment proxy-init/ignore-proxy-user-id",
        "-A PROXY_INIT_OUTPUT -o lo -j RETURN -m comment --comment proxy-init/ignore-loopback",
        "-A PROXY_INIT_OUTPUT -p tcp -j REDIRECT --to-port 4140"
        " -m comment --comment proxy-init/redirect-all-outgoing-to-proxy-port",
    ]


def test_ignored_outbound_ports_and_subnets() -> None:
    config = FirewallConfig(
        inbound_port=5143,
        outbound_port=5140,
        proxy_uid=3000,
        outbound_ports_to_ignore=PortRanges(((443, 443), (6000, 6100))),
        subnets_to_ignore=("10.1.0.0/16",),
    )
    rules = [" ".join(r[:-4]) for r in chain_rules(config)]
    assert rules == [
        "-A PROXY_INIT_REDIRECT -s 10.1.0.0/16 -j RETURN",
        "-A PROXY_INIT_REDIRECT -p tcp -j REDIRECT --to-port 5143",
        "-A PROXY_INIT_OUTPUT -m owner --uid-owner 3000 -j RETURN",
        "-A PROXY_INIT_OUTPUT -o lo -j RETURN",
        "-A PROXY_INIT_OUTPUT -p tcp -m multiport --dports 443,6000:6100 -j RETURN",
        "-A PROXY_INIT_OUTPUT -p tcp -j REDIRECT --to-port 5140",
    ]


@pytest.mark.parametrize(
    ("ranges", "groups"),
    [
        (tuple((p, p) for p in range(1, 21)), [15, 5]),
        (tuple((p, p + 1) for p in range(100, 200, 10)), [7, 3]),
        (((1, 1),) * 0, []),
    ],
)
def test_multiport_rules_stay_within_fifteen_references(
    ranges: tuple[tuple[int, int], ...], groups: list[int]
) -> None:
    config = FirewallConfig(inbound_ports_to_ignore=PortRanges(ranges))
    lists = [r[r.index("--dports") + 1] for r in chain_rules(config) if "--dports" in r]
    assert [len(d.split(",")) for d in lists] == groups


def test_a_fresh_namespace_gets_chains_then_jumps() -> None:
    commands = [" ".join(c) for c in plan(INJECTED)]
    assert commands[:2] == ["-t nat -N PROXY_INIT_REDIRECT", "-t nat -N PROXY_INIT_OUTPUT"]
    assert commands[-2:] == [
        "-t nat -A PREROUTING -j PROXY_INIT_REDIRECT"
        " -m comment --comment proxy-init/install-proxy-init-prerouting",
        "-t nat -A OUTPUT -j PROXY_INIT_OUTPUT"
        " -m comment --comment proxy-init/install-proxy-init-output",
    ]


SAVED = """*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:PROXY_INIT_OUTPUT - [0:0]
:PROXY_INIT_REDIRECT - [0:0]
-A PREROUTING -m comment --comment "proxy-init/install-proxy-init-prerouting" -j PROXY_INIT_REDIRECT
-A OUTPUT -m comment --comment "proxy-init/install-proxy-init-output" -j PROXY_INIT_OUTPUT
-A PROXY_INIT_REDIRECT -p tcp -j REDIRECT --to-ports 4143
COMMIT
"""


def test_running_again_flushes_and_refills_without_new_jumps() -> None:
    commands = [" ".join(c) for c in plan(INJECTED, SAVED)]
    assert commands[:2] == ["-t nat -F PROXY_INIT_REDIRECT", "-t nat -F PROXY_INIT_OUTPUT"]
    assert not any(" PREROUTING " in c or " OUTPUT -j" in c for c in commands)
    assert len(commands) == 2 + len(chain_rules(INJECTED))


class FakeIptables:
    """Records commands; ``iptables-save`` answers ``saved``; ``fail`` makes one command fail."""

    def __init__(self, saved: str = "", fail: str | None = None) -> None:
        self.saved = saved
        self.fail = fail
        self.ran: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.ran.append(list(argv))
        if self.fail and self.fail in " ".join(argv):
            return subprocess.CompletedProcess(argv, 4, "", "iptables: No chain/target/match.")
        out = self.saved if argv[0].endswith("save") else ""
        return subprocess.CompletedProcess(argv, 0, out, "")


def test_apply_runs_the_plan_with_the_wait_flag() -> None:
    fake = FakeIptables()
    apply(INJECTED, run=fake, echo=lambda line: None)
    assert fake.ran[0] == ["iptables-save", "-t", "nat"]
    assert fake.ran[1] == ["iptables", "-t", "nat", "-N", "PROXY_INIT_REDIRECT", "-w"]
    assert fake.ran[-1] == ["iptables-save", "-t", "nat"]


def test_a_failing_command_is_named() -> None:
    fake = FakeIptables(fail="REDIRECT --to-port 4140")
    with pytest.raises(InitError, match=r"--to-port 4140 .*failed: iptables: No chain"):
        apply(INJECTED, run=fake, echo=lambda line: None)


def test_a_missing_binary_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--firewall-save-bin-path", "/nonexistent/iptables-save"])
    assert exit_.value.code == 1
    assert "proxy-init: /nonexistent/iptables-save not found" in capsys.readouterr().err


def test_simulate_prints_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    main(
        [
            "--incoming-proxy-port", "4143",
            "--outgoing-proxy-port", "4140",
            "--proxy-uid", "2102",
            "--inbound-ports-to-ignore", "4190,4191",
            "--outbound-ports-to-ignore", "",
            "--subnets-to-ignore", "10.9.0.0/16",
            "--simulate",
        ]
    )  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "iptables -t nat -N PROXY_INIT_REDIRECT -w"
    assert any("--dports 4190,4191" in line for line in lines)
    assert any("-s 10.9.0.0/16 -j RETURN" in line for line in lines)
    v4 = [line for line in lines if line.startswith("iptables ")]
    v6 = [line for line in lines if line.startswith("ip6tables ")]
    assert len(v4) == len(plan(FirewallConfig())) + 2
    assert len(v6) == len(v4) - 1  # the same rules but the IPv4 subnet (no IPv6 bypass)
    assert not any("10.9.0.0/16" in line for line in v6)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--inbound-ports-to-ignore", "http"], "is not a port"),
        (["--subnets-to-ignore", "10.0.0.0/40"], "--subnets-to-ignore"),
        (["--proxy-uid", "0"], "non-root"),
        (["--incoming-proxy-port", "0"], "1-65535"),
    ],
)
def test_bad_flags_exit_2(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*flags, "--simulate"])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


# --- as root, in a throwaway network namespace -------------------------------------------

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("iptables"),
    reason="applying iptables rules needs root, ip(8) and iptables",
)


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"isthmus-pinit-{os.getpid()}-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=30)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=30)


def in_netns(name: str, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        ["ip", "netns", "exec", name, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
        check=False,
    )


INIT_FLAGS = (
    "--incoming-proxy-port", "4143",
    "--outgoing-proxy-port", "4140",
    "--proxy-uid", "2102",
    "--inbound-ports-to-ignore", "4190-4191",
    "--outbound-ports-to-ignore", "443",
)  # fmt: skip

CONNECT_AND_READ_ORIGINAL_DESTINATION = """
import socket
from mesh.proxy.origdst import original_destination
listener = socket.create_server(("0.0.0.0", 4140))
client = socket.socket()
client.settimeout(5)
client.connect(("10.99.0.5", 8080))
accepted, _ = listener.accept()
print(original_destination(accepted))
"""


@needs_root
def test_rules_applied_in_a_network_namespace(netns: str) -> None:
    """Installed twice (idempotent), the nat table holds each rule once, and a connection from
    the pod to another address is redirected to port 4140 with its original destination."""
    for _ in range(2):
        run = in_netns(netns, sys.executable, "-m", "mesh.proxy.init", *INIT_FLAGS)
        assert run.returncode == 0, run.stderr
    saved = in_netns(netns, "iptables-save", "-t", "nat").stdout
    rules = [line for line in saved.splitlines() if line.startswith("-A ")]
    assert rules == [
        '-A PREROUTING -m comment --comment "proxy-init/install-proxy-init-prerouting"'
        " -j PROXY_INIT_REDIRECT",
        '-A OUTPUT -m comment --comment "proxy-init/install-proxy-init-output"'
        " -j PROXY_INIT_OUTPUT",
        "-A PROXY_INIT_OUTPUT -m owner --uid-owner 2102"
        ' -m comment --comment "proxy-init/ignore-proxy-user-id" -j RETURN',
        '-A PROXY_INIT_OUTPUT -o lo -m comment --comment "proxy-init/ignore-loopback" -j RETURN',
        "-A PROXY_INIT_OUTPUT -p tcp -m multiport --dports 443"
        ' -m comment --comment "proxy-init/ignore-port-443" -j RETURN',
        "-A PROXY_INIT_OUTPUT -p tcp"
        ' -m comment --comment "proxy-init/redirect-all-outgoing-to-proxy-port"'
        " -j REDIRECT --to-ports 4140",
        "-A PROXY_INIT_REDIRECT -p tcp -m multiport --dports 4190:4191"
        ' -m comment --comment "proxy-init/ignore-port-4190:4191" -j RETURN',
        "-A PROXY_INIT_REDIRECT -p tcp"
        ' -m comment --comment "proxy-init/redirect-all-incoming-to-proxy-port"'
        " -j REDIRECT --to-ports 4143",
    ]
    saved6 = in_netns(netns, "ip6tables-save", "-t", "nat").stdout
    rules6 = [line for line in saved6.splitlines() if line.startswith("-A ")]
    assert rules6 == rules, "IPv6 must be redirected the same way (no bypass)"
    for command in (
        ["ip", "link", "set", "lo", "up"],
        ["ip", "link", "add", "pod0", "type", "veth", "peer", "name", "pod1"],
        ["ip", "addr", "add", "10.99.0.2/24", "dev", "pod0"],
        ["ip", "link", "set", "pod0", "up"],
        ["ip", "link", "set", "pod1", "up"],
    ):
        assert in_netns(netns, *command).returncode == 0
    probe = in_netns(netns, sys.executable, "-c", CONNECT_AND_READ_ORIGINAL_DESTINATION)
    assert (probe.returncode, probe.stdout.strip()) == (0, "10.99.0.5:8080"), probe.stderr


@needs_root
def test_a_failure_in_the_namespace_exits_non_zero(netns: str) -> None:
    run = in_netns(
        netns,
        sys.executable,
        "-m",
        "mesh.proxy.init",
        *INIT_FLAGS,
        "--firewall-bin-path",
        "/bin/false",
    )
    assert run.returncode == 1
    assert "proxy-init: /bin/false -t nat -N PROXY_INIT_REDIRECT -w failed" in run.stderr


IF_INET6 = (
    "00000000000000000000000000000001 01 80 10 80       lo\n"
    "fe800000000000000000000000000001 02 40 20 80     eth0\n"
)


def test_ipv6_gets_the_same_chains_with_its_own_subnets() -> None:
    """IPv6: the ip6tables plan is the IPv4 one, with only IPv6 subnets to ignore."""
    config = FirewallConfig(subnets_to_ignore=("10.9.0.0/16", "fd00::/8"))
    v4, v6 = plan(config), plan(config, family=6)
    assert [c for c in v4 if "-s" not in c] == [c for c in v6 if "-s" not in c]
    assert [c[c.index("-s") + 1] for c in v4 if "-s" in c] == ["10.9.0.0/16"]
    assert [c[c.index("-s") + 1] for c in v6 if "-s" in c] == ["fd00::/8"]


def test_apply_ipv6_runs_ip6tables() -> None:
    fake = FakeIptables()
    apply_ipv6(INJECTED, run=fake, echo=lambda line: None, if_inet6=lambda: IF_INET6)
    assert fake.ran[0] == ["ip6tables-save", "-t", "nat"]
    assert fake.ran[1] == ["ip6tables", "-t", "nat", "-N", "PROXY_INIT_REDIRECT", "-w"]
    assert any("REDIRECT --to-port 4143" in " ".join(c) for c in fake.ran)


def test_ipv6_in_use_without_ip6tables_refuses_to_start() -> None:
    """IPv6: never a silent bypass; the init container fails, so the pod does not start."""
    fake = FakeIptables(fail="ip6tables")
    with pytest.raises(InitError, match=r"IPv6 is in use here \(fe80::1%eth0\).*bypass"):
        apply_ipv6(INJECTED, run=fake, echo=lambda line: None, if_inet6=lambda: IF_INET6)


def test_no_ipv6_address_without_ip6tables_is_only_noted() -> None:
    fake = FakeIptables(fail="ip6tables")
    said: list[str] = []
    loopback_only = IF_INET6.splitlines()[0]
    table = apply_ipv6(INJECTED, run=fake, echo=said.append, if_inet6=lambda: loopback_only)
    assert table == ""
    assert said
    assert "IPv6 not redirected" in said[-1]


def test_ipv6_addresses_skip_loopback_and_junk() -> None:
    assert ipv6_addresses(IF_INET6 + "garbage line\n" + "zz" * 16 + " 1 2 3 4 x\n") == [
        "fe80::1%eth0"
    ]
