#!/usr/bin/env python3
"""Compares the routes the server serves with the operations openapi.yaml describes.

usage: openapi_routes.py ROUTES_C SPEC [LABEL]

ROUTES_C is server/api/routes.c: every entry of its route table starts with
`{"METHOD", "/pattern"` (the rest of an entry may go on over more lines).
SPEC is the OpenAPI description as JSON (scripts/check-openapi makes it with
`redocly bundle --ext json`), or as YAML when PyYAML is installed. LABEL
names the spec in messages (default: SPEC).

Both sides become sets of (METHOD, path) with every path parameter written
`{}` ({uuid}, {id}, {kind} in routes.c and whatever the spec names them), so
parameter names do not matter. A `head` operation in the spec counts as served
when routes.c has GET on that path (the router answers HEAD as GET). Prints
what each side lacks and exits 1 on any difference, 2 on unusable input.
Standard library only.
"""

import json
import re
import sys

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
PARAM = re.compile(r"\{[^{}/]*\}")
ENTRY = re.compile(r'\{\s*"([A-Za-z]+)"\s*,\s*"(/[^"]*)"')


class InputError(Exception):
    pass


def normalize(path):
    return PARAM.sub("{}", path)


def strip_c_comments(text):
    """The C source without its comments; string and character literals are kept as they are."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise InputError("unterminated comment")
            out.append(" ")
            i = end + 2
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        else:
            out.append(c)
            i += 1
    return "".join(out)


def routes_of(path):
    """{(METHOD, normalized path): original pattern} of the route table in `path`."""
    with open(path, encoding="utf-8") as f:
        source = strip_c_comments(f.read())
    routes, duplicates = {}, []
    for method, pattern in ENTRY.findall(source):
        key = (method.upper(), normalize(pattern))
        if key in routes:
            duplicates.append(f"{key[0]} {pattern} (and {routes[key]})")
        routes[key] = pattern
    if not routes:
        raise InputError(f'{path}: found no route entries of the form {{"METHOD", "/pattern", ...}}')
    return routes, duplicates


def load_spec(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.endswith(".json"):
        return json.loads(text)
    try:
        import yaml  # PyYAML, optional: scripts/check-openapi hands over JSON
    except ImportError:
        raise InputError(f"{path}: not JSON, and PyYAML is not installed to read YAML "
                         "(convert it with: redocly bundle SPEC --ext json -o FILE.json)") from None
    return yaml.safe_load(text)


def operations_of(spec, path):
    """{(METHOD, normalized path): original path} of the spec's paths object."""
    paths = spec.get("paths") if isinstance(spec, dict) else None
    if not isinstance(paths, dict) or not paths:
        raise InputError(f"{path}: no paths")
    ops = {}
    for p, item in paths.items():
        if not isinstance(item, dict):
            raise InputError(f"{path}: paths.{p} is not an object")
        for key in item:
            if key.lower() in HTTP_METHODS:
                ops[(key.upper(), normalize(p))] = p
    return ops


def main(argv):
    if len(argv) not in (3, 4):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    routes_c, spec_path = argv[1], argv[2]
    label = argv[3] if len(argv) == 4 else spec_path
    try:
        routes, duplicates = routes_of(routes_c)
        ops = operations_of(load_spec(spec_path), spec_path)
    except (OSError, ValueError, InputError) as e:
        print(f"FAIL: {e}")
        return 2

    served = set(routes)
    # HEAD is matched as GET by the router, so a documented HEAD on a GET route is served.
    served |= {("HEAD", p) for (m, p) in routes if m == "GET"}
    undocumented = sorted(set(routes) - set(ops))
    unserved = sorted(set(ops) - served)

    failed = False
    for line in duplicates:
        print(f"FAIL: routes.c has the same method and path twice: {line}")
        failed = True
    if undocumented:
        print(f"FAIL: served by the server ({routes_c}) but missing from {label}:")
        for key in undocumented:
            print(f"  {key[0]} {routes[key]}")
        failed = True
    if unserved:
        print(f"FAIL: in {label} but not served by the server ({routes_c}):")
        for key in unserved:
            print(f"  {key[0]} {ops[key]}")
        failed = True
    if failed:
        return 1
    print(f"ok: the {len(routes)} routes of {routes_c} are exactly the operations of {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
