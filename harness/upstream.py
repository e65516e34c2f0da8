"""Upstream Kubernetes components, built from their Go modules and cached by version.

Each pinned Kubernetes minor has a wrapper Go module under ``clusters/k8s/<minor>``
(``require k8s.io/kubernetes`` plus a ``replace`` of every staging module by its
``v0.X.Y`` twin); etcd, CoreDNS and podinfo (the program behind the
``stefanprodan/podinfo`` image) have theirs under ``clusters/etcd``, ``clusters/coredns``
and ``clusters/podinfo``; a component may also copy files of its module next to the
binaries (podinfo's ``ui/``, which it serves from its working directory). Binaries
land in ``~/.cache/isthmus/<component>/<version>-<hash>/`` where the hash covers the
wrapper's go.mod and go.sum, so a changed pin rebuilds and nothing else does.
"""

from __future__ import annotations

import collections
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CLUSTERS_DIR = Path(__file__).resolve().parent.parent / "clusters"


def cache_root() -> Path:
    return Path(os.environ.get("ISTHMUS_CACHE", Path.home() / ".cache" / "isthmus"))


@dataclass(frozen=True)
class K8sPin:
    version: str  # v1.35.4

    @property
    def minor(self) -> str:  # 1.35
        return ".".join(self.version.lstrip("v").split(".")[:2])

    @property
    def minor_tag(self) -> str:  # v1.35
        return f"v{self.minor}"


KNOWN_VERSIONS: dict[str, K8sPin] = {
    "1.35": K8sPin("v1.35.4"),
    "1.34": K8sPin("v1.34.4"),
}
DEFAULT_VERSION = KNOWN_VERSIONS["1.35"].version

PODINFO_MODULE = "github.com/stefanprodan/podinfo"
#: components that run as a workload image rather than as part of a cluster.
IMAGE_COMPONENTS = ("podinfo",)

K8S_COMMANDS = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
    "kubectl",
)


@dataclass(frozen=True)
class Component:
    """One wrapper module and the commands it builds."""

    name: str
    module_dir: Path
    packages: dict[str, str]  # binary name -> Go package
    version: str
    ldflags: str = ""
    #: module -> paths inside it copied next to the binaries (same relative path).
    assets: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        h = hashlib.sha256()
        for f in ("go.mod", "go.sum"):
            h.update((self.module_dir / f).read_bytes())
        return f"{self.version}-{h.hexdigest()[:10]}"

    @property
    def bin_dir(self) -> Path:
        return cache_root() / self.name / self.key

    def built(self) -> bool:
        return (
            all((self.bin_dir / b).is_file() for b in self.packages)
            and (self.bin_dir / ".complete").exists()
        )


def _k8s_ldflags(version: str) -> str:
    major, minor, _ = version.lstrip("v").split(".")
    values = {
        "gitVersion": version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "gitCommit": "0000000000000000000000000000000000000000",
        "buildDate": "1970-01-01T00:00:00Z",
    }
    flags = [
        f"-X {pkg}.{k}={v}"
        for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for k, v in values.items()
    ]
    return " ".join(["-s", "-w", *flags])


def _module_version(module_dir: Path, module: str) -> str:
    for line in (module_dir / "go.mod").read_text().splitlines():
        parts = line.split()
        if "require" in parts and module in parts:
            return parts[-1]
        if parts[:1] == [module]:
            return parts[1]
    raise ValueError(f"{module_dir}/go.mod does not require {module}")


def components(k8s_version: str = DEFAULT_VERSION) -> list[Component]:
    pin = next((p for p in KNOWN_VERSIONS.values() if p.version == k8s_version), None)
    if pin is None:
        known = ", ".join(p.version for p in KNOWN_VERSIONS.values())
        raise ValueError(f"unknown Kubernetes version {k8s_version!r}; pinned: {known}")
    k8s_dir = CLUSTERS_DIR / "k8s" / pin.minor
    etcd_dir, dns_dir = CLUSTERS_DIR / "etcd", CLUSTERS_DIR / "coredns"
    podinfo_dir = CLUSTERS_DIR / "podinfo"
    return [
        Component(
            "k8s",
            k8s_dir,
            {c: f"k8s.io/kubernetes/cmd/{c}" for c in K8S_COMMANDS},
            pin.version,
            _k8s_ldflags(pin.version),
        ),
        Component(
            "etcd",
            etcd_dir,
            {"etcd": "go.etcd.io/etcd/server/v3"},
            _module_version(etcd_dir, "go.etcd.io/etcd/server/v3"),
            "-s -w",
        ),
        Component(
            "coredns",
            dns_dir,
            {"coredns": "github.com/coredns/coredns"},
            _module_version(dns_dir, "github.com/coredns/coredns"),
            "-s -w",
        ),
        Component(
            "podinfo",
            podinfo_dir,
            {
                "podinfo": f"{PODINFO_MODULE}/cmd/podinfo",
                "podcli": f"{PODINFO_MODULE}/cmd/podcli",
            },
            _module_version(podinfo_dir, PODINFO_MODULE),
            "-s -w",
            assets=((PODINFO_MODULE, "ui"),),
        ),
    ]


@dataclass(frozen=True)
class Binaries:
    """Where every upstream binary of one Kubernetes version is."""

    dirs: dict[str, Path]

    def path(self, binary: str) -> Path:
        for d in self.dirs.values():
            if (d / binary).is_file():
                return d / binary
        raise FileNotFoundError(f"{binary} is not built; run `./run` or `python -m harness build`")

    def image_dirs(self) -> dict[str, Path]:
        """Built components whose programs stand behind images (see the kubelet catalogue)."""
        return {name: d for name, d in self.dirs.items() if name in IMAGE_COMPONENTS}


def binaries(k8s_version: str = DEFAULT_VERSION) -> Binaries:
    """The cached binaries for ``k8s_version``; raises if any is missing."""
    comps = components(k8s_version)
    missing = [c.name for c in comps if not c.built()]
    if missing:
        raise FileNotFoundError(
            f"upstream binaries not built for {k8s_version}: {', '.join(missing)}; "
            f"run `python -m harness build --k8s-version {k8s_version}`"
        )
    return Binaries({c.name: c.bin_dir for c in comps})


def build(
    k8s_version: str = DEFAULT_VERSION,
    progress: Callable[[str], None] = print,
) -> Binaries:
    """Build whatever is not cached yet; return the binaries. Idempotent."""
    for comp in components(k8s_version):
        if comp.built():
            progress(f"{comp.name} {comp.version}: cached in {comp.bin_dir}")
            continue
        _build_one(comp, progress)
    return binaries(k8s_version)


def _build_one(comp: Component, progress: Callable[[str], None]) -> None:
    if shutil.which("go") is None:
        raise RuntimeError("`go` is not on PATH; Go >= 1.25 is needed to build upstream binaries")
    tmp = comp.bin_dir.with_name(comp.bin_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod -buildvcs=false"}
    for i, (binary, pkg) in enumerate(comp.packages.items(), 1):
        progress(
            f"{comp.name} {comp.version}: building {binary} "
            f"({i}/{len(comp.packages)}; a cold build takes many minutes)"
        )
        started = time.monotonic()
        cmd = ["go", "build", "-v", "-trimpath", "-ldflags", comp.ldflags]
        _go_build([*cmd, "-o", str(tmp / binary), pkg], comp.module_dir, env, binary, progress)
        progress(f"{comp.name}: {binary} built in {time.monotonic() - started:.0f}s")
    for module, rel in comp.assets:
        _copy_asset(comp.module_dir, env, module, rel, tmp / rel)
    (tmp / ".complete").write_text(comp.key + "\n")
    shutil.rmtree(comp.bin_dir, ignore_errors=True)
    tmp.rename(comp.bin_dir)


def _copy_asset(module_dir: Path, env: dict[str, str], module: str, rel: str, dest: Path) -> None:
    """Copy ``rel`` of ``module`` (from the module cache) to ``dest``, made writable."""
    out = subprocess.run(
        ["go", "list", "-m", "-f", "{{.Dir}}", module],
        cwd=module_dir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    src = Path(out.stdout.strip()) / rel
    if out.returncode != 0 or not src.exists():
        raise RuntimeError(f"cannot find {rel} of {module} in the module cache: {out.stderr}")
    if src.is_dir():
        shutil.copytree(src, dest)
    else:
        shutil.copy2(src, dest)
    for p in [dest, *dest.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)


#: seconds between "still building" lines during a long compile.
REPORT_EVERY = 20.0


def _go_build(
    cmd: list[str], cwd: Path, env: dict[str, str], label: str, progress: Callable[[str], None]
) -> None:
    """Run ``go build -v``, reporting how many packages it compiled every REPORT_EVERY s."""
    started = last = time.monotonic()
    compiled = 0
    tail: collections.deque[str] = collections.deque(maxlen=80)
    with subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:
            tail.append(line)
            if line.strip() and not line.startswith(("#", " ", "\t")) and ":" not in line:
                compiled += 1  # -v names each package as it is compiled
            now = time.monotonic()
            if now - last >= REPORT_EVERY:
                progress(f"  {label}: {compiled} packages compiled so far ({now - started:.0f}s)")
                last = now
    if proc.returncode != 0:
        raise RuntimeError(f"building {label} in {cwd} failed:\n{''.join(tail)}")
