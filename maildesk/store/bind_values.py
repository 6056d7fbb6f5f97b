"""Row values converted for the driver ahead of a bulk write, as SQLAlchemy would bind them.

The bulk paths hand rows to the driver directly (SQLite's executemany, PostgreSQL's
COPY): SQLAlchemy's per-row parameter handling cost more than the database's own work.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Dialect, Table

from maildesk.store.db import json_dumps

Converters = list[tuple[int, Callable[[Any], Any]]]


def bound_rows(
    dialect: Dialect, table: Table, rows: list[dict[str, Any]], *, json_text: bool = False
) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    """The column keys of `rows` (which share one column set) and each row's values
    converted by the columns' bind processors, in key order. With `json_text`, JSON
    columns get their JSON text (what PostgreSQL's COPY reads) instead of a driver object."""
    keys = tuple(rows[0])
    converters = _converters(dialect, table, keys, json_text)
    take = operator.itemgetter(*keys)
    params: list[Any] = (
        [take(row) for row in rows] if len(keys) > 1 else [(row[keys[0]],) for row in rows]
    )
    if not converters:
        return keys, params
    params = [list(values) for values in params]
    # Most values repeat within a batch (its timestamp, None, flags): convert each once.
    seen: dict[tuple[int, Any], Any] = {}
    for i, convert in converters:
        for values in params:
            value = values[i]
            if isinstance(value, datetime | bool | None):
                key = (i, value)
                if key not in seen:
                    seen[key] = convert(value)
                values[i] = seen[key]
            else:
                values[i] = convert(value)
    return keys, [tuple(values) for values in params]


@functools.cache
def _converters(
    dialect: Dialect, table: Table, keys: tuple[str, ...], json_text: bool
) -> Converters:
    """The columns (by position in `keys`) whose values need a bind processor."""
    columns = [table.c[key] for key in keys]
    found = [
        json_dumps
        if json_text and isinstance(c.type, JSON)
        else c.type.dialect_impl(dialect).bind_processor(dialect)
        for c in columns
    ]
    return [(i, convert) for i, convert in enumerate(found) if convert is not None]
