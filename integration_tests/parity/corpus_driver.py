"""Runs Airbyte's declarative engine (airbyte-cdk) on many manifests in one process: for each,
`spec`, then a minimal config satisfying that spec, then `discover` with it, all through the
CDK's own entrypoint (the code path of `source-declarative-manifest`).

Usage: python corpus_driver.py OUT_DIR MANIFEST.yaml...
Writes OUT_DIR/<name>.json = {"spec": [messages], "config": {...}, "discover": [messages]}
(<name> is the manifest file's stem); a crash is recorded as {"error": "..."}.
"""

import io
import json
import os
import sys
import tempfile
import traceback
from contextlib import redirect_stdout

import jsonschema
import yaml
from airbyte_cdk.entrypoint import AirbyteEntrypoint
from airbyte_cdk.sources.declarative.concurrent_declarative_source import (
    ConcurrentDeclarativeSource,
)

# Values tried, in order, for a required string without default, enum or const.
STRINGS = [
    "2024-01-01T00:00:00Z",
    "2024-01-01T00:00:00.000Z",
    "2024-01-01",
    "2024-01-01 00:00:00",
    "2024-01",
    "01-01-2024",
    "x",
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "1",
    "a@b.co",
    "https://example.com",
]


def string_for(schema):
    fmt = schema.get("format")
    if fmt is None and "pattern" not in schema:
        return "x"
    tried = list(STRINGS)
    if fmt == "date":
        tried.insert(0, "2024-01-01")
    for value in tried:
        try:
            jsonschema.validate(value, schema)
            return value
        except jsonschema.ValidationError:
            continue
    return "x"


def dated(schema):
    """Whether an optional property is a date the streams are likely to need."""
    return isinstance(schema, dict) and schema.get("format") in ("date", "date-time")


def minimal(schema):
    """A small value valid against `schema`: defaults, consts and first choices, required keys."""
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return schema["const"]
    if "default" in schema:
        return schema["default"]
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    for key in ("oneOf", "anyOf"):
        if schema.get(key):
            return minimal(schema[key][0])
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties", {})
        # Required keys, and dates the streams may need even where the spec leaves them out.
        keys = [k for k, p in props.items() if k in schema.get("required", []) or dated(p)]
        return {k: minimal(props[k]) for k in keys}
    if kind == "array":
        n = schema.get("minItems", 0)
        return [minimal(schema.get("items", {})) for _ in range(n)]
    if kind == "integer":
        return max(schema.get("minimum", 1), 1)
    if kind == "number":
        return max(schema.get("minimum", 1), 1)
    if kind == "boolean":
        return False
    if kind == "string" or kind is None:
        return string_for(schema)
    return None


def run(source, args):
    """The messages the entrypoint prints for `args`, parsed."""
    entrypoint = AirbyteEntrypoint(source)
    parsed = entrypoint.parse_args(args)
    buf = io.StringIO()
    with redirect_stdout(buf):
        lines = list(entrypoint.run(parsed))
    out = [json.loads(line) for line in lines + buf.getvalue().splitlines() if line.strip()]
    return [m for m in out if m.get("type") != "LOG"]


def one(path, out_dir, tmp):
    name = os.path.splitext(os.path.basename(path))[0]
    result = {}
    try:
        with open(path, encoding="utf-8") as f:
            manifest = yaml.safe_load(f)
        spec_source = ConcurrentDeclarativeSource(
            source_config=manifest, config=None, catalog=None, state=None
        )
        result["spec"] = run(spec_source, ["spec"])
        spec = next(m["spec"] for m in result["spec"] if m.get("type") == "SPEC")
        config = minimal(spec["connectionSpecification"])
        result["config"] = config
        config_path = os.path.join(tmp, f"{name}-config.json")
        with open(config_path, "w", encoding="utf-8") as f:
            json.dump(config, f)
        source = ConcurrentDeclarativeSource(
            source_config=manifest, config=config, catalog=None, state=None
        )
        result["discover"] = run(source, ["discover", "--config", config_path])
    except BaseException as e:  # noqa: BLE001 - recorded, the harness reports it
        result["error"] = f"{type(e).__name__}: {e}\n{traceback.format_exc()}"
    with open(os.path.join(out_dir, f"{name}.json"), "w", encoding="utf-8") as f:
        json.dump(result, f)


def main():
    out_dir = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        for path in sys.argv[2:]:
            one(path, out_dir, tmp)


if __name__ == "__main__":
    main()
