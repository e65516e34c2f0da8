"""Label selectors written as kubectl writes them, turned into a Link's ``LabelSelector``.

``parse_selector("mirror.linkerd.io/exported=true")`` gives ``{"matchLabels":
{...}}``; the grammar is Kubernetes' own: comma-separated requirements ``k=v``,
``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k`` (exists) and ``!k``
(does not exist). Equality goes to ``matchLabels``, everything else to
``matchExpressions``. Keys and values are checked against Kubernetes' label
syntax, so a bad selector fails here with a message, not later in the mirror
controller. Also: label names and ``key=value`` lists for ``--excluded-*``.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["SelectorError", "check_label_key", "parse_selector"]

_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_SET = re.compile(r"^(?P<key>\S+)\s+(?P<op>in|notin)\s*\((?P<values>[^()]*)\)$")
_OPERATORS = {"in": "In", "notin": "NotIn"}


class SelectorError(ValueError):
    """A selector or label key that Kubernetes would reject; the message says which part."""


def check_label_key(key: str) -> None:
    """``SelectorError`` unless ``key`` is a label key: ``[prefix/]name``, as Kubernetes allows."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        raise SelectorError(f"label key {key!r}: prefix {prefix!r} is not a DNS subdomain")
    if not name or len(name) > 63 or not _NAME.fullmatch(name):
        raise SelectorError(
            f"label key {key!r}: name {name!r} must be 1-63 characters of letters, digits, "
            "'-', '_' or '.', starting and ending with a letter or digit"
        )


def _check_value(key: str, value: str) -> None:
    if value and (len(value) > 63 or not _NAME.fullmatch(value)):
        raise SelectorError(
            f"label {key!r}: value {value!r} must be at most 63 characters of letters, "
            "digits, '-', '_' or '.', starting and ending with a letter or digit"
        )


def _split(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "(":
            depth += 1
            if depth > 1:
                raise SelectorError(f"selector {text!r}: nested parentheses")
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"selector {text!r}: ')' without '('")
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth:
        raise SelectorError(f"selector {text!r}: '(' without ')'")
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _requirement(text: str, whole: str) -> tuple[str, str | None, dict[str, Any] | None]:
    """``(key, value, None)`` for equality, ``(key, None, expression)`` otherwise."""
    if not text:
        raise SelectorError(f"selector {whole!r}: empty requirement")
    if match := _SET.match(text):
        key = match["key"]
        values = [v.strip() for v in match["values"].split(",")]
        if values == [""]:
            raise SelectorError(f"selector {whole!r}: {key} {match['op']} () needs values")
        check_label_key(key)
        for value in values:
            _check_value(key, value)
        operator = _OPERATORS[match["op"]]
        return key, None, {"key": key, "operator": operator, "values": sorted(set(values))}
    for op in ("!=", "==", "="):
        if op in text:
            key, _, value = (part.strip() for part in text.partition(op))
            check_label_key(key)
            _check_value(key, value)
            if op == "!=":
                return key, None, {"key": key, "operator": "NotIn", "values": [value]}
            return key, value, None
    if text.startswith("!"):
        key = text[1:].strip()
        check_label_key(key)
        return key, None, {"key": key, "operator": "DoesNotExist"}
    if any(c.isspace() for c in text) or "(" in text:
        raise SelectorError(
            f"selector {whole!r}: cannot read {text!r}; "
            "expected k=v, k!=v, k in (a,b), k notin (a,b), k or !k"
        )
    check_label_key(text)
    return text, None, {"key": text, "operator": "Exists"}


def parse_selector(text: str) -> dict[str, Any]:
    """A ``metav1.LabelSelector`` mapping for ``text``; empty text selects everything.

    Raises ``SelectorError`` naming the part that is wrong.
    """
    if not text.strip():
        return {}
    labels: dict[str, str] = {}
    expressions: list[dict[str, Any]] = []
    for part in _split(text):
        key, value, expression = _requirement(part, text)
        if value is not None:
            if labels.get(key, value) != value:
                raise SelectorError(f"selector {text!r}: {key} is required to equal two values")
            labels[key] = value
        elif expression is not None:
            expressions.append(expression)
    selector: dict[str, Any] = {}
    if labels:
        selector["matchLabels"] = labels
    if expressions:
        selector["matchExpressions"] = expressions
    return selector
