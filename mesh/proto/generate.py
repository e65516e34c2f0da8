"""Regenerate the Python code for the mesh's ``.proto`` files.

``python -m mesh.proto.generate`` (needs the dev extras: ``grpcio-tools`` and
``mypy-protobuf``). Protos are compiled with the repository root as the include
path, so generated modules import each other as ``mesh.proto.x_pb2``. The output
(``*_pb2.py``, ``*_pb2_grpc.py`` and their ``.pyi`` stubs) is committed, so nothing
at run time needs the compiler.
"""

from __future__ import annotations

import shutil
import sys
from importlib import resources
from pathlib import Path

__all__ = ["PROTOS", "generate", "main"]

_HERE = Path(__file__).resolve().parent
_ROOT = _HERE.parent.parent
PROTOS = ("destination.proto", "identity.proto", "inbound.proto")


def _plugin(name: str) -> str:
    """The path of the protoc plugin ``name``, next to this interpreter or on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"{name} not found: install the dev extras (mypy-protobuf)")
    return found


def generate() -> None:
    """Compile every proto in ``PROTOS`` into this package; raise ``SystemExit`` on failure."""
    try:
        from grpc_tools import protoc  # type: ignore[import-untyped]
    except ImportError:
        raise SystemExit("grpc_tools not found: install the dev extras (grpcio-tools)") from None
    well_known = resources.files("grpc_tools") / "_proto"
    out = str(_ROOT)
    args = [
        "grpc_tools.protoc",
        f"--proto_path={_ROOT}",
        f"--proto_path={well_known}",
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *(str((_HERE / name).relative_to(_ROOT)) for name in PROTOS),
    ]
    code = protoc.main(args)
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}")


def main() -> None:
    generate()
    print(f"generated Python code for {', '.join(PROTOS)} in {_HERE}")


if __name__ == "__main__":
    main()
