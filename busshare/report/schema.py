"""The JSON Schemas of the records (shipped as package data in ``schemas/``), for tools and tests.

``record.schema.json`` accepts any object a command prints and sends it to the
schema its ``record`` names; every schema refers to ``common.schema.json`` for
the shared definitions.  Validating needs a JSON Schema library (the tests use
``jsonschema``): busshare itself only ships the files.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from .records import RecordKind

Schema = dict[str, Any]
NAMES = ("common", "record", *(k.value for k in RecordKind))


def load(name: str) -> Schema:
    """One schema by name: a record kind, ``record`` or ``common``."""
    if name not in NAMES:
        raise KeyError(f"no schema {name!r} (known: {', '.join(NAMES)})")
    text = resources.files(__package__).joinpath("schemas", f"{name}.schema.json").read_text(encoding="utf-8")
    schema: Schema = json.loads(text)
    return schema


def all_schemas() -> dict[str, Schema]:
    """Every schema by its ``$id`` (what a validator's reference registry needs)."""
    return {s["$id"]: s for s in map(load, NAMES)}
