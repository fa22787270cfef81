"""The subset of Blink's RQL (the ``q`` query parameter) the emulator understands."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

Record = dict[str, Any]
Predicate = Callable[[Record], bool]

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
_QUERY_KEYS = frozenset({"filter", "sort", "limit", "offset", "select"})


class RqlError(ValueError):
    """The ``q`` parameter is malformed; the message says what is wrong."""


@dataclass(frozen=True)
class Query:
    """A parsed RQL query: a filter predicate, sort keys, a page window and a projection."""

    predicate: Predicate | None = None
    sort: tuple[tuple[str, bool], ...] = ()
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    select: tuple[str, ...] | None = None
    #: The only ``id`` values the filter can match, when it is one ``id`` equality or an ``$or`` of
    #: them (what a batched read sends): the server then looks those up instead of scanning.
    ids: frozenset[str] | None = None

    def run(
        self, records: Sequence[Record], shape: Callable[[Record], Record] | None = None
    ) -> tuple[int, list[Record]]:
        """
        Return the number of matches and the requested page of them (projected if asked).

        :param shape: turns a record into the answer's item (applied to the page only).

        Blink promises no order among records whose sort keys are equal (nor does SQL). The emulator
        makes that visible: pages after the first list such ties in reverse order, so a client that
        pages over ties without a tiebreaker (e.g. ``id``) sees repeats and gaps, as it could in Blink.
        """
        matches = [r for r in records if self.predicate(r)] if self.predicate else list(records)
        for field, descending in reversed(self.sort):
            matches.sort(key=lambda r, f=field: _sort_key(r.get(f)), reverse=descending)  # type: ignore[misc]
        if self.sort and self.offset > 0:
            page = _page_with_ties_reversed(matches, self.offset, self.limit, [f for f, _ in self.sort])
        else:
            page = matches[self.offset : self.offset + self.limit]
        if shape is not None:
            page = [shape(r) for r in page]
        if self.select is not None:
            page = [{f: r[f] for f in self.select if f in r} for r in page]
        return len(matches), page


def parse_query(raw: str | None, fields: Collection[str] | None = None) -> Query:
    """
    Parse the ``q`` parameter (a JSON object); ``None`` or empty means the default query.

    :param raw: the raw parameter value.
    :param fields: the fields the answer's records have (e.g. a list item's); the filter and the
        sort see any other field as absent, as they would in Blink. ``None``: every field.
    :raises RqlError: if it is not valid RQL.
    """
    if raw is None or not raw.strip():
        return Query()
    try:
        obj = json.loads(raw)
    except ValueError as exc:
        raise RqlError(f"q is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise RqlError("q must be a JSON object")
    unknown = set(obj) - _QUERY_KEYS
    if unknown:
        raise RqlError(f"unknown q keys: {sorted(unknown)}; expected some of {sorted(_QUERY_KEYS)}")
    limit = _int_in_range(obj.get("limit", DEFAULT_LIMIT), "limit", 1, MAX_LIMIT)
    offset = _int_in_range(obj.get("offset", 0), "offset", 0, None)
    visible = None if fields is None else frozenset(fields)
    predicate = _compile_filter(obj["filter"], visible) if obj.get("filter") is not None else None
    sort = tuple((f, d) for f, d in _parse_sort(obj.get("sort")) if visible is None or f in visible)
    ids = _matched_ids(obj.get("filter")) if visible is None or "id" in visible else None
    return Query(predicate, sort, limit, offset, _parse_select(obj.get("select")), ids)


def _matched_ids(node: Any) -> frozenset[str] | None:
    """The ids a filter of ``id`` equalities (bare or ``$eq``, alone or ``$or``-ed) can match, else ``None``."""
    alternatives = node.get("$or") if isinstance(node, dict) and list(node) == ["$or"] else [node]
    ids: set[str] = set()
    for alternative in alternatives if isinstance(alternatives, list) else ():
        if not isinstance(alternative, dict) or list(alternative) != ["id"]:
            return None
        value = alternative["id"]
        if isinstance(value, dict) and list(value) == ["$eq"]:
            value = value["$eq"]
        if not isinstance(value, str):
            return None
        ids.add(value)
    return frozenset(ids) if ids else None


def _int_in_range(value: Any, name: str, low: int, high: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RqlError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise RqlError(f"{name} must be {bounds}, got {value}")
    return value


def _string_list(value: Any, name: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise RqlError(f"{name} must be a list of field names")
    return value


def _parse_sort(value: Any) -> tuple[tuple[str, bool], ...]:
    if value is None:
        return ()
    keys = []
    for item in _string_list(value, "sort"):
        descending = item.startswith("-")
        field = item.lstrip("+-")
        if not field:
            raise RqlError(f"invalid sort key {item!r}")
        keys.append((field, descending))
    return tuple(keys)


def _parse_select(value: Any) -> tuple[str, ...] | None:
    return None if value is None else tuple(_string_list(value, "select"))


def _compile_filter(node: Any, visible: frozenset[str] | None) -> Predicate:
    if not isinstance(node, dict):
        raise RqlError(f"filter must be a JSON object, got {node!r}")
    predicates: list[Predicate] = []
    for key, value in node.items():
        if key == "$or":
            if not isinstance(value, list) or not value:
                raise RqlError("$or must be a non-empty list of filter objects")
            alternatives = [_compile_filter(v, visible) for v in value]
            predicates.append(lambda r, alts=alternatives: any(p(r) for p in alts))  # type: ignore[misc]
        elif key.startswith("$"):
            raise RqlError(f"unknown filter operator {key!r}")
        else:
            predicates.append(_compile_field(key if visible is None or key in visible else None, value))
    if len(predicates) == 1:
        return predicates[0]
    return lambda r: all(p(r) for p in predicates)


def _compile_field(field: str | None, condition: Any) -> Predicate:
    """A predicate on one field; ``None``: a field the records do not have (always absent)."""
    if not (isinstance(condition, dict) and any(k.startswith("$") for k in condition)):
        return lambda r: _equal(r.get(field) if field else None, condition)
    tests: list[Callable[[Any], bool]] = []
    for op, operand in condition.items():
        if op == "$like":
            if not isinstance(operand, str):
                raise RqlError(f"$like on {field!r} needs a string pattern")
            pattern = _like_regex(operand)
            tests.append(lambda v, p=pattern: isinstance(v, str) and p.fullmatch(v) is not None)  # type: ignore[misc]
        elif op in _COMPARATORS:
            compare = _COMPARATORS[op]
            tests.append(lambda v, c=compare, o=operand: c(v, o))  # type: ignore[misc]
        else:
            raise RqlError(f"unknown predicate {op!r} on field {field!r}")
    return lambda r: all(t(r.get(field) if field else None) for t in tests)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):  # keep JSON true apart from 1
        return type(a) is type(b) and a == b
    return bool(a == b)


def _ordered(a: Any, b: Any, check: Callable[[Any, Any], bool]) -> bool:
    numbers = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    if (isinstance(a, numbers) and isinstance(b, numbers)) or (isinstance(a, str) and isinstance(b, str)):
        return check(a, b)
    return False


_COMPARATORS: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": _equal,
    "$neq": lambda a, b: not _equal(a, b),
    "$gt": lambda a, b: _ordered(a, b, lambda x, y: x > y),
    "$lt": lambda a, b: _ordered(a, b, lambda x, y: x < y),
    "$gte": lambda a, b: _ordered(a, b, lambda x, y: x >= y),
    "$lte": lambda a, b: _ordered(a, b, lambda x, y: x <= y),
}


def _like_regex(pattern: str) -> re.Pattern[str]:
    parts = [".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern]
    return re.compile("".join(parts), re.DOTALL)


def _page_with_ties_reversed(
    records: list[Record], offset: int, limit: int, fields: list[str]
) -> list[Record]:
    """The page ``[offset, offset + limit)`` of ``records`` with every run of equal sort keys reversed."""

    def key(index: int) -> list[tuple[int, Any]]:
        return [_sort_key(records[index].get(f)) for f in fields]

    end = min(offset + limit, len(records))
    page: list[Record] = []
    position = offset
    while position < end:
        tie = key(position)
        first, after = position, position + 1
        while first > 0 and key(first - 1) == tie:
            first -= 1
        while after < len(records) and key(after) == tie:
            after += 1
        stop = min(after, end)
        page.extend(records[first + after - 1 - i] for i in range(position, stop))
        position = stop
    return page


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, int | float):
        return (2, value)
    if isinstance(value, str):
        return (3, value)
    return (4, json.dumps(value, sort_keys=True, default=str))
