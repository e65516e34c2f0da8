"""The JSON Patch subset: pointers escape, ``add`` inserts/appends/replaces, errors say where."""

from __future__ import annotations

import pytest

from mesh.inject.jsonpatch import PatchError, add, apply, pointer


def test_pointer_escapes() -> None:
    assert pointer("metadata", "annotations", "linkerd.io/inject") == (
        "/metadata/annotations/linkerd.io~1inject"
    )
    assert pointer("a~b", 0) == "/a~0b/0"


@pytest.mark.parametrize(
    ("doc", "op", "expected"),
    [
        ({"a": {}}, add("/a/b", 1), {"a": {"b": 1}}),
        ({"a": {"b": 1}}, add("/a/b", 2), {"a": {"b": 2}}),
        ({"a": [1, 2]}, add("/a/0", 0), {"a": [0, 1, 2]}),
        ({"a": [1, 2]}, add("/a/-", 3), {"a": [1, 2, 3]}),
        ({"a": [1, 2]}, add("/a/2", 3), {"a": [1, 2, 3]}),
        ({"m": {"x/y": 1}}, add("/m/x~1y", 2), {"m": {"x/y": 2}}),
        ({}, add("", {"new": True}), {"new": True}),
    ],
)
def test_add(doc: object, op: dict[str, object], expected: object) -> None:
    assert apply(doc, [op]) == expected


@pytest.mark.parametrize(
    ("doc", "op", "message"),
    [
        ({}, add("/a/b", 1), "does not exist"),
        ({"a": [1]}, add("/a/5", 1), "out of range"),
        ({"a": [1]}, add("/a/x", 1), "not an array index"),
        ({"a": 1}, add("/a/b", 1), "scalar"),
        ({}, {"op": "remove", "path": "/a"}, "unsupported"),
        ({}, add("a", 1), "starts with"),
    ],
)
def test_errors(doc: object, op: dict[str, object], message: str) -> None:
    with pytest.raises(PatchError, match=message):
        apply(doc, [op])


def test_apply_does_not_modify_its_input() -> None:
    doc = {"a": [1]}
    value = {"x": 1}
    op = add("/a/-", value)
    value["x"] = 2
    assert apply(doc, [op]) == {"a": [1, {"x": 1}]}
    assert doc == {"a": [1]}
