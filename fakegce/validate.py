"""Request validation shared by every resource: JSON shape, names, labels, ports, ranges, list filters."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from fakegce.errors import ApiError, invalid, invalid_field
from fakegce.schema import MESSAGES

NAME_PATTERN = "[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?"
_NAME_RE = re.compile(NAME_PATTERN)
_LABEL_KEY_RE = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_LABEL_VALUE_RE = re.compile(r"[a-z0-9_-]{0,63}")
_INT_RE = re.compile(r"-?[0-9]+")
_INT_BOUNDS = {
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}


def _type_error(where: str, kind: str, value: Any) -> ApiError:
    return ApiError(
        400,
        "invalid",
        f"Invalid value at '{where}' (TYPE_{kind.upper()}), {_json_literal(value)}",
    )


def _json_literal(value: Any) -> str:
    return (
        f'"{value}"'
        if isinstance(value, str)
        else str(value).lower()
        if isinstance(value, bool)
        else str(value)
    )


def check_message(message: str, body: Any, where: str = "resource") -> None:
    """Reject what GCE's JSON front end rejects: unknown names, wrong JSON types, unknown enum values."""
    if not isinstance(body, dict):
        raise invalid(f"Invalid JSON payload received. Expected an object at '{where}'.")
    fields = MESSAGES[message]
    for name, value in body.items():
        if name not in fields:
            raise ApiError(
                400,
                "invalid",
                f"Invalid JSON payload received. Unknown name \"{name}\" at '{where}': Cannot find field.",
            )
        if value is None:
            continue
        kind, repeated, values = fields[name]
        path = f"{where}.{name}"
        if repeated:
            if not isinstance(value, list):
                raise invalid(f"Invalid JSON payload received. Expected a list at '{path}'.")
            for i, item in enumerate(value):
                _check_value(kind, values, item, f"{path}[{i}]")
        else:
            _check_value(kind, values, value, path)


def _check_value(kind: str, values: tuple[str, ...], value: Any, where: str) -> None:
    if kind.startswith("message:"):
        check_message(kind.removeprefix("message:"), value, where)
    elif kind.startswith("map:"):
        if not isinstance(value, dict):
            raise invalid(f"Invalid JSON payload received. Expected an object at '{where}'.")
        for key, item in value.items():
            _check_value(kind.removeprefix("map:"), (), item, f"{where}[{key}]")
    elif kind == "string":
        if not isinstance(value, str):
            raise _type_error(where, kind, value)
    elif kind == "bool":
        if not isinstance(value, bool):
            raise _type_error(where, kind, value)
    elif kind == "double":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _type_error(where, kind, value)
    elif kind in _INT_BOUNDS:
        number = _as_int(value)
        low, high = _INT_BOUNDS[kind]
        if number is None or not low <= number <= high:
            raise _type_error(where, kind, value)
    elif kind == "enum":
        if value == "":  # proto3 clients send "" for an explicitly empty string; GCE reads it as unset
            return
        allowed = [v for v in values if not v.startswith("INVALID")]
        if not isinstance(value, str) or value not in allowed:
            raise invalid_field(where, value, f"Must be one of [{', '.join(allowed)}].")
    else:  # pragma: no cover - the generator emits only the kinds above
        raise AssertionError(kind)


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INT_RE.fullmatch(value):
        return int(value)
    return None


def check_name(name: Any, field: str = "resource.name") -> str:
    if not name:
        raise ApiError(400, "required", f"Required field '{field}' not specified")
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise invalid_field(field, name, f"Must be a match of regex '(?:{NAME_PATTERN})'")
    return name


def check_labels(labels: Any, field: str = "resource.labels") -> dict[str, str]:
    if not labels:
        return {}
    if len(labels) > 64:
        raise invalid_field(field, "...", "A resource can have at most 64 labels.")
    for key, value in labels.items():
        if not _LABEL_KEY_RE.fullmatch(key):
            raise invalid_field(f"{field}.key", key, "Label keys must start with a lowercase letter.")
        if not _LABEL_VALUE_RE.fullmatch(value):
            raise invalid_field(
                f"{field}.value", value, "Label values may contain lowercase letters, digits, '-' and '_'."
            )
    return dict(labels)


def int_field(
    body: dict[str, Any], name: str, default: int, low: int, high: int, *, where: str = "resource"
) -> int:
    value = body.get(name)
    if value is None:
        return default
    number = _as_int(value)
    if number is None or not low <= number <= high:
        raise invalid_field(f"{where}.{name}", value, f"Must be between {low} and {high}.")
    return number


def check_port(value: str, field: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise invalid_field(field, value, "Ports must be between 1 and 65535.")
    return int(value)


def check_port_range(value: str, field: str) -> tuple[int, int]:
    """``"80"`` or ``"80-443"``."""
    low, sep, high = value.partition("-")
    first = check_port(low, field)
    last = check_port(high, field) if sep else first
    if last < first:
        raise invalid_field(field, value, "The end of a port range must not be lower than its start.")
    return first, last


def check_cidr(value: str, field: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise invalid_field(field, value, "Must be a valid IP address or CIDR range.") from None


def check_ip(value: str, field: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(value)
    except ValueError:
        raise invalid_field(field, value, "Must be a valid IPv4 address.") from None


# --- list filters ---------------------------------------------------------------------------------

_EXPR_RE = re.compile(
    r'\s*\(?\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(eq|ne|=|!=)\s*("(?:[^"\\]|\\.)*"|[^\s()]+)\s*\)?\s*'
)


def parse_filter(text: str) -> Callable[[dict[str, Any]], bool]:
    """GCE's list filters: ``name eq "regex"``, ``name ne regex`` (RE2 full match), ``name = "x"``, ``!=``,
    several expressions joined by ``AND`` or juxtaposed in parentheses. Anything else is 400."""
    text = text.strip()
    if not text:
        return lambda _item: True
    checks: list[Callable[[dict[str, Any]], bool]] = []
    pos = 0
    while pos < len(text):
        match = _EXPR_RE.match(text, pos)
        if match is None or match.end() == pos:
            raise invalid_field("filter", text, "Invalid list filter expression.")
        field, op, raw = match.groups()
        value = raw[1:-1].replace('\\"', '"') if raw.startswith('"') else raw
        checks.append(_filter_check(field, op, value, text))
        pos = match.end()
        rest = text[pos:]
        if rest.startswith("AND "):
            pos += 4
    return lambda item: all(check(item) for check in checks)


def _filter_check(field: str, op: str, value: str, text: str) -> Callable[[dict[str, Any]], bool]:
    pattern: re.Pattern[str] | None = None
    if op in ("eq", "ne"):
        try:
            pattern = re.compile(value)
        except re.error:
            raise invalid_field("filter", text, "Invalid regular expression.") from None

    def lookup(item: dict[str, Any]) -> str:
        current: Any = item
        for part in field.split("."):
            current = current.get(part) if isinstance(current, dict) else None
        if isinstance(current, bool):
            return str(current).lower()
        return "" if current is None else str(current)

    def check(item: dict[str, Any]) -> bool:
        actual = lookup(item)
        if pattern is not None:
            return bool(pattern.fullmatch(actual)) == (op == "eq")
        return (actual == value) == (op == "=")

    return check
