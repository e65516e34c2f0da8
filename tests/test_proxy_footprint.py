"""What the proxy's processes import: the memory they carry (issue 12).

Each check imports an entry point in a fresh interpreter and reads
``sys.modules``: a sidecar started as the pod starts it (``isthmus component
proxy``) and the bench's proxy part must not load the control plane's or the
CLI's modules, nor the bench's load generator. Memory figures themselves are
measured by ``python -m bench.rss``, not asserted here (they vary by machine).
Also: the lazily loaded namespaces (``mesh.identity``, ``mesh.install``, the
CLI's groups) still offer every name and command, ``bench.importmem``
attributes memory to the module that was loading, and ``bench.rss`` gives its
sidecar an environment the proxy accepts and reads ``/proc`` right.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.importmem import ImportMemory

ROOT = Path(__file__).resolve().parents[1]

CONTROL_PLANE_ONLY = (
    "mesh.check",
    "mesh.destination",
    "mesh.failover",
    "mesh.identity.certs",
    "mesh.identity.cli",
    "mesh.identity.issuing",
    "mesh.identity.service",
    "mesh.inject",
    "mesh.install.cli",
    "mesh.install.controlplane",
    "mesh.install.credentials",
    "mesh.install.render",
    "mesh.install.values",
    "mesh.k8s.convert",
    "mesh.k8s.watching",
    "mesh.multicluster",
    "mesh.policy",
    "mesh.viz",
    "harness",
    "httpx",
    "kubernetes",
    "lightkube",
    "prometheus_client",
    "yaml",
)
"""Modules (and their submodules) a sidecar proxy never needs."""


def imported_by(*modules: str) -> set[str]:
    """``sys.modules`` of a fresh interpreter after importing ``modules``."""
    code = (
        "import importlib, json, sys\n"
        f"for m in {list(modules)!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    )
    return set(json.loads(out.stdout))


def offenders(loaded: set[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(m for m in loaded if any(m == f or m.startswith(f + ".") for f in forbidden))


def test_the_sidecar_started_as_a_pod_starts_it_loads_no_control_plane_module() -> None:
    # isthmus component proxy: the console script's module, the component table, the proxy.
    loaded = imported_by("mesh.cli", "mesh.install.components", "mesh.proxy.__main__")
    assert "mesh.proxy.runtime" in loaded, "the proxy's main did not load its runtime"
    bad = offenders(loaded, CONTROL_PLANE_ONLY)
    assert not bad, f"isthmus component proxy imports modules the sidecar never uses: {bad}"


def test_the_cli_loads_a_command_group_only_when_asked_for_it() -> None:
    loaded = imported_by("mesh.cli")
    groups = ("mesh.check", "mesh.inject", "mesh.install.cli", "mesh.multicluster", "mesh.viz")
    assert not offenders(loaded, groups), f"mesh.cli imports {offenders(loaded, groups)}"


def test_the_bench_proxy_part_loads_only_what_a_proxy_needs() -> None:
    loaded = imported_by("bench.proxy_part")
    assert "mesh.proxy.server" in loaded
    forbidden = (*CONTROL_PLANE_ONLY, "bench.loadgen", "bench.proxy", "cProfile", "pstats")
    forbidden += ("statistics", "grpc", "google.protobuf")
    bad = offenders(loaded, forbidden)
    assert not bad, f"bench.proxy_part (what bench proxy measures) imports {bad}"


def test_importing_the_proxys_trust_check_does_not_load_the_issuer() -> None:
    loaded = imported_by("mesh.identity.trust")
    assert not offenders(loaded, ("mesh.identity.certs", "mesh.identity.issuing")), loaded


@pytest.mark.parametrize("package", ["mesh.identity", "mesh.install"])
def test_a_lazy_package_still_offers_every_name(package: str) -> None:
    module = importlib.import_module(package)
    sources: dict[str, tuple[str, ...]] = module._SOURCES
    assert sorted(module.__all__) == sorted(n for names in sources.values() for n in names)
    for submodule, names in sources.items():
        real = importlib.import_module(f"{package}.{submodule}")
        for name in names:
            assert getattr(module, name) is getattr(real, name), f"{package}.{name}"
    assert set(module.__all__) <= set(dir(module))
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        module.nothing_here  # noqa: B018


def test_import_memory_is_attributed_to_the_loading_module_minus_its_imports() -> None:
    rss = iter([100, 110, 115, 140])  # outer starts, inner starts, inner ends, outer ends
    memory = ImportMemory(rss_kib=lambda: next(rss))

    def outer() -> None:
        memory._measured("inner", lambda: None)

    memory._measured("outer", outer)
    assert memory.self_kib == {"inner": 5, "outer": 35}


def test_importmem_reports_the_modules_it_imported_and_not_those_already_loaded() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.importmem", "colorsys", "json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    report = json.loads(out.stdout)
    assert "colorsys" in report["modules"], report
    assert "json" not in report["modules"], "json was loaded before measuring (baseline)"
    assert report["baseline_kib"] > 0


def test_bench_rss_gives_the_sidecar_an_environment_the_proxy_accepts(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from bench import rss
    from mesh.identity import create_anchor
    from mesh.proxy.envconfig import EnvError, load

    anchors = create_anchor("cluster.local", now=datetime.now(UTC)).certificate_pem()
    env = rss.sidecar_env(tmp_path, 4321, anchors)
    try:
        config = load(env)
    except EnvError as e:
        pytest.fail(f"bench.rss's sidecar environment is refused: {e.problems}")
    assert config.identity is not None, "the sidecar must run with identity (mTLS), as in a pod"
    assert config.identity.svc.port == 4321
    listeners = [v for k, v in env.items() if k.endswith("_LISTEN_ADDR")]
    assert len(listeners) == 4, listeners
    assert all(a.startswith("127.0.0.1:") for a in listeners), listeners


def test_bench_rss_reads_a_processes_memory() -> None:
    import os

    from bench.rss import memory

    m = memory(os.getpid())
    assert m.vm_rss > 0, m
    assert m.threads >= 1, m
    assert m.vm_hwm >= m.vm_rss, m
    assert m.rss_anon + m.rss_file <= m.vm_rss + 64, m  # shmem aside; 64 KiB of slack
    assert 0 < m.pss <= m.vm_rss + 64, m


def test_the_lazy_cli_still_lists_and_runs_every_group() -> None:
    from click.testing import CliRunner

    from mesh.cli import main

    runner = CliRunner()
    shown = runner.invoke(main, ["--help"])
    assert shown.exit_code == 0, shown.output
    for group in ("check", "identity", "inject", "install", "multicluster", "uninstall", "viz"):
        assert f"  {group} " in shown.output, (
            f"{group} missing from isthmus --help:\n{shown.output}"
        )
    for hidden in ("component", "mc"):
        assert f"  {hidden} " not in shown.output, f"hidden command {hidden} listed"
    alias = runner.invoke(main, ["mc", "--help"])
    assert alias.exit_code == 0, alias.output
    assert "Alias of multicluster." in alias.output, alias.output
    unknown = runner.invoke(main, ["nosuch"])
    assert unknown.exit_code == 2, unknown.output
    assert "No such command 'nosuch'" in unknown.output, unknown.output
