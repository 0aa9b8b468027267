"""Checks Klaxon's Slack app manifests against Slack's own JSON Schema.

Usage: check_manifest.py SCHEMA MANIFEST... ; exits 1 and lists the errors if any manifest
breaks the schema. A known-invalid manifest is checked too, so a validator that accepts
everything fails here.
"""
import json
import sys

import jsonschema


def errors(schema, path):
    with open(path) as f:
        manifest = json.load(f)
    return list(jsonschema.Draft7Validator(schema).iter_errors(manifest))


def main():
    schema_path, invalid_example, *manifests = sys.argv[1:]
    with open(schema_path) as f:
        schema = json.load(f)
    if not errors(schema, invalid_example):
        print(f"the schema check accepted {invalid_example}, which is invalid: the check is broken")
        return 1
    failed = 0
    for path in manifests:
        found = errors(schema, path)
        for e in found:
            print(f"{path}: {'/'.join(map(str, e.absolute_path))}: {e.message}")
        failed += bool(found)
        print(f"{path}: {'INVALID' if found else 'valid'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
