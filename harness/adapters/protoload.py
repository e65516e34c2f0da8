"""A mesh's gRPC API loaded from its .proto at run time, without importing the mesh.

``load_messages`` compiles the file with ``grpc_tools.protoc`` into a descriptor set
and builds message classes in a private descriptor pool, so the classes never clash
with generated modules some other code registered in the default pool. ``unary``
makes a unary-unary callable for one method on a channel.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

__all__ = ["ProtoError", "load_messages", "unary"]


class ProtoError(RuntimeError):
    """The .proto could not be compiled or does not declare what was asked."""


def load_messages(
    proto: Path, names: Sequence[str], include_dirs: Sequence[Path] = ()
) -> dict[str, type[Any]]:
    """Message classes for the fully qualified ``names`` declared by ``proto`` (or its imports)."""
    from grpc_tools import protoc  # type: ignore[import-untyped]

    well_known = Path(protoc.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory(prefix="isthmus-proto-") as tmp:
        out = Path(tmp) / "set.pb"
        args = [
            "grpc_tools.protoc",
            f"--proto_path={proto.parent}",
            *(f"--proto_path={d}" for d in include_dirs),
            f"--proto_path={well_known}",
            "--include_imports",
            f"--descriptor_set_out={out}",
            proto.name,
        ]
        code = protoc.main(args)
        if code != 0 or not out.is_file():
            raise ProtoError(f"protoc could not compile {proto} (exit {code}): {' '.join(args)}")
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for f in files.file:
        pool.Add(f)
    classes = {}
    for name in names:
        try:
            descriptor = pool.FindMessageTypeByName(name)
        except KeyError:
            raise ProtoError(f"{proto} declares no message {name}") from None
        classes[name] = message_factory.GetMessageClass(descriptor)
    return classes


def unary(
    channel: grpc.Channel, service: str, method: str, request: type[Any], response: type[Any]
) -> Callable[..., Any]:
    """A callable sending ``request`` messages to ``/<service>/<method>`` on ``channel``."""
    return channel.unary_unary(
        f"/{service}/{method}",
        request_serializer=request.SerializeToString,
        response_deserializer=response.FromString,
    )
