"""enrich-py: an IceDB format-row plugin written in Python.

Keeps each top-level field as a column (nested objects and arrays become
JSON text), reads the time field as a timestamp, and adds a derived column
`event_group`: the part of the event name before its first `_`
(`page_view` -> `page`).

Settings:
  time-field   (default "ts")     epoch milliseconds or RFC 3339 text
  event-field  (default "event")  the field `event_group` is derived from
"""

import json
from datetime import datetime

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports.types import (
    Batch,
    Column,
    PluginError,
    Value_Boolean,
    Value_Float,
    Value_Int,
    Value_Null,
    Value_Text,
    Value_Timestamp,
)

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
SETTINGS = {"time-field": "ts", "event-field": "event"}
NULL = Value_Null()


def to_value(value):
    if value is None:
        return NULL
    if isinstance(value, bool):
        return Value_Boolean(value)
    if isinstance(value, int):
        return Value_Int(value) if I64_MIN <= value <= I64_MAX else Value_Float(float(value))
    if isinstance(value, float):
        return Value_Float(value)
    if isinstance(value, str):
        return Value_Text(value)
    return Value_Text(json.dumps(value, separators=(",", ":")))


def to_timestamp(value):
    if value is None:
        return NULL
    if isinstance(value, bool):
        raise ValueError(f"{value} is not a time")
    if isinstance(value, (int, float)):
        return Value_Timestamp(int(value * 1000))
    if isinstance(value, str):
        return Value_Timestamp(int(datetime.fromisoformat(value).timestamp() * 1_000_000))
    raise ValueError("expected epoch milliseconds or RFC 3339 text")


class FormatRow(exports.FormatRow):
    def configure(self, settings):
        for key, value in settings:
            if key not in SETTINGS:
                raise Err(f"unknown setting `{key}` (known: {', '.join(SETTINGS)})")
            SETTINGS[key] = value

    def format(self, rows):
        time_field = SETTINGS["time-field"]
        event_field = SETTINGS["event-field"]
        columns = {}
        for index, text in enumerate(rows):
            try:
                row = json.loads(text)
            except ValueError as error:
                raise Err(PluginError(row=index, reason=f"invalid JSON: {error}"))
            if not isinstance(row, dict):
                raise Err(PluginError(row=index, reason="expected a JSON object"))
            cells = {}
            for name, value in row.items():
                if name == time_field:
                    try:
                        cells[name] = to_timestamp(value)
                    except ValueError as error:
                        raise Err(PluginError(row=index, reason=f"field `{name}`: {error}"))
                else:
                    cells[name] = to_value(value)
            event = row.get(event_field)
            cells["event_group"] = Value_Text(event.split("_", 1)[0]) if isinstance(event, str) else NULL
            for name, cell in cells.items():
                column = columns.get(name)
                if column is None:
                    column = columns[name] = [NULL] * index
                column.append(cell)
            for column in columns.values():
                if len(column) == index:
                    column.append(NULL)
        return Batch(
            row_count=len(rows),
            columns=[Column(name=name, values=values) for name, values in columns.items()],
        )
