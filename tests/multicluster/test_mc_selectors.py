"""Label selectors as kubectl writes them become a Link's LabelSelector, or a clear error."""

from __future__ import annotations

from typing import Any

import pytest

from mesh.multicluster.selectors import SelectorError, check_label_key, parse_selector


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        (
            "mirror.linkerd.io/exported=true",
            {"matchLabels": {"mirror.linkerd.io/exported": "true"}},
        ),
        ("a==b, c=d", {"matchLabels": {"a": "b", "c": "d"}}),
        ("a=", {"matchLabels": {"a": ""}}),
        ("a!=b", {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["b"]}]}),
        (
            "tier in (web, api),env notin (dev)",
            {
                "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["api", "web"]},
                    {"key": "env", "operator": "NotIn", "values": ["dev"]},
                ]
            },
        ),
        ("exported", {"matchExpressions": [{"key": "exported", "operator": "Exists"}]}),
        ("!legacy", {"matchExpressions": [{"key": "legacy", "operator": "DoesNotExist"}]}),
        (
            "app=x,!y",
            {
                "matchLabels": {"app": "x"},
                "matchExpressions": [{"key": "y", "operator": "DoesNotExist"}],
            },
        ),
    ],
)
def test_selector_syntax(text: str, expected: dict[str, Any]) -> None:
    assert parse_selector(text) == expected


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("a=b,", "empty requirement"),
        ("a in (b", "'(' without ')'"),
        ("a in b)", "')' without '('"),
        ("a in ()", "needs values"),
        ("a b", "cannot read 'a b'"),
        ("-a=b", "name '-a'"),
        ("Bad_Prefix/x=y", "prefix 'Bad_Prefix' is not a DNS subdomain"),
        ("a=b c", "value 'b c'"),
        ("a=" + "v" * 64, "at most 63"),
        ("a=b,a=c", "two values"),
    ],
)
def test_bad_selectors_say_what_is_wrong(text: str, complaint: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_selector(text)
    assert complaint in str(caught.value)


def test_label_keys() -> None:
    check_label_key("mirror.linkerd.io/exported")
    check_label_key("app")
    for bad in ("", "/x", "a/", "x" * 64, "a/b/c"):
        with pytest.raises(SelectorError):
            check_label_key(bad)
