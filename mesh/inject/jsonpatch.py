"""The part of JSON Patch (RFC 6902) and JSON Pointer (RFC 6901) the injector speaks.

Only ``add`` is produced and applied: the injector never removes or replaces
what the user wrote, it adds beside it. ``add`` on an existing object member
replaces that member (as the RFC says); on an array index it inserts; ``-``
appends. ``apply`` never modifies its input.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["Op", "PatchError", "add", "apply", "pointer"]

Op = dict[str, Any]


class PatchError(ValueError):
    """A patch that does not apply to the document; the message names the path."""


def pointer(*parts: str | int) -> str:
    """The JSON Pointer of ``parts``, escaping ``~`` and ``/`` inside them."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def add(path: str, value: object) -> Op:
    """An ``add`` operation; ``value`` is copied so later changes to it do not leak in."""
    return {"op": "add", "path": path, "value": copy.deepcopy(value)}


def _tokens(path: str) -> list[str]:
    if not path.startswith("/"):
        raise PatchError(f"{path!r}: a JSON pointer starts with '/'")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _index(token: str, length: int, path: str, *, insert: bool) -> int:
    if token == "-" and insert:
        return length
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise PatchError(f"{path!r}: {token!r} is not an array index")
    index = int(token)
    if index > length or (index == length and not insert):
        raise PatchError(f"{path!r}: index {index} is out of range")
    return index


def _add(doc: Any, op: Mapping[str, Any]) -> Any:
    path = op["path"]
    if path == "":
        return copy.deepcopy(op["value"])
    *parents, last = _tokens(path)
    node = doc
    for token in parents:
        if isinstance(node, dict):
            if token not in node:
                raise PatchError(f"{path!r}: {token!r} does not exist")
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(token, len(node), path, insert=False)]
        else:
            raise PatchError(f"{path!r}: {token!r} is inside a scalar")
    value = copy.deepcopy(op["value"])
    if isinstance(node, dict):
        node[last] = value
    elif isinstance(node, list):
        node.insert(_index(last, len(node), path, insert=True), value)
    else:
        raise PatchError(f"{path!r}: the parent is a scalar")
    return doc


def apply(doc: Any, ops: Sequence[Mapping[str, Any]]) -> Any:
    """``doc`` with ``ops`` applied in order; ``PatchError`` if one does not apply."""
    result = copy.deepcopy(doc)
    for op in ops:
        if op.get("op") != "add":
            raise PatchError(f"unsupported operation {op.get('op')!r}; only 'add' is")
        result = _add(result, op)
    return result
