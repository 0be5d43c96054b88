#!/usr/bin/env python3
"""check-openapi.py: docs/openapi.yaml against the OpenAPI 3.1 schema and
against the ingress's sources.

  check-openapi.py            validate the document (tests/openapi/, vendored,
                              so no network is needed) and compare its error
                              codes with those the sources produce: every
                              (status, error.code) the ingress can answer is
                              documented, and every documented one is produced
  check-openapi.py --pairs    print the documented (status, code) pairs, one
                              "STATUS CODE" a line (itest_openapi reads them)

A response documents its codes as the enum of error.code in its schema
(allOf/oneOf members included), or as x-error-codes (a batch whose first
item's error is the answer's status). Adding an endpoint's codes is adding
its responses to the document; the sources are scanned whole.
"""
import glob
import json
import os
import re
import sys

import jsonschema
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "openapi.yaml")
SCHEMA = os.path.join(ROOT, "tests", "openapi", "openapi-3.1.schema.json")
# What the ingress answers: its own files and the envelope builder it calls
# (envelope_amqp.c is the worker's).
SOURCES = ["ingress/*.c", "common/envelope.c", "common/envelope_json.c",
           "common/envelope_request.c"]
METHODS = ("get", "head", "post", "put", "patch", "delete", "options", "trace")


def resolve(doc, node):
    while isinstance(node, dict) and "$ref" in node:
        path = node["$ref"]
        if not path.startswith("#/"):
            raise SystemExit(f"openapi: external $ref {path} is not supported")
        node = doc
        for part in path[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def schema_codes(doc, schema, seen=None):
    """The error codes a response schema allows."""
    schema = resolve(doc, schema)
    codes = set()
    if not isinstance(schema, dict):
        return codes
    codes.update(schema.get("x-error-codes", []))
    code = schema.get("properties", {}).get("error", {})
    code = resolve(doc, code).get("properties", {}).get("code", {}) if isinstance(code, dict) else {}
    codes.update(code.get("enum", []))
    for key in ("allOf", "oneOf", "anyOf"):
        for sub in schema.get(key, []):
            codes |= schema_codes(doc, sub)
    return codes


def response_pairs(doc, responses, where):
    pairs = {}
    for status, resp in responses.items():
        if int(status) < 400:
            continue  # a status document's "error" is the request's, not the API's
        resp = resolve(doc, resp)
        for media in resp.get("content", {}).values():
            for code in schema_codes(doc, media.get("schema", {})):
                pairs.setdefault((int(status), code), set()).add(where)
    return pairs


def documented(doc):
    """(status, code) -> the operations that document it."""
    pairs = {}

    def merge(more):
        for k, v in more.items():
            pairs.setdefault(k, set()).update(v)
    merge(response_pairs(doc, doc.get("x-sluice-any-request", {}).get("responses", {}), "any"))
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                merge(response_pairs(doc, item[method].get("responses", {}),
                                     f"{method.upper()} {path}"))
    return pairs


PATTERNS = [
    # answer_error(a, 404, "not_found", ...), refuse(a, 413, "body_too_large", ...),
    # bulk_item_fail(it, 503, "broker_unavailable", ...)
    re.compile(r'\b(?:answer_error|refuse|bulk_item_fail)\(\s*[^,()]+,\s*(\d{3}),\s*"(\w+)"'),
    # (struct auth_refusal){.status = 401, .code = "unauthorized"}
    re.compile(r'\.status\s*=\s*(\d{3}),\s*\.code\s*=\s*"(\w+)"'),
    # the envelope builder's contexts: {e, err, 400, "invalid_request"}
    re.compile(r'\{[^{}]*\berr,\s*(\d{3}),\s*"(\w+)"\s*\}'),
]


def produced():
    """(status, code) -> the source files that answer it."""
    pairs = {}
    for pattern in SOURCES:
        for path in sorted(glob.glob(os.path.join(ROOT, pattern))):
            text = open(path, encoding="utf-8").read()
            rel = os.path.relpath(path, ROOT)
            found = [(int(s), c) for p in PATTERNS for s, c in p.findall(text)]
            # bulk.c's document errors are all 400 (split_fail sets it).
            found += [(400, c) for c in re.findall(r'split_fail\(err,\s*"(\w+)"', text)]
            # env_oom and a hand-made error body (deadline.c's 408).
            if "env_oom" in text and 'code = "internal_error"' in text:
                found.append((500, "internal_error"))
            body = re.search(r'\\"code\\":\\"(\w+)\\"', text)
            status = re.search(r'HTTP/1\.1 (\d{3}) ', text)
            if body and status:
                found.append((int(status.group(1)), body.group(1)))
            # j.c.code = "invalid_request": the context's status stays 400.
            found += [(400, c) for c in re.findall(r'\bj\.c\.code\s*=\s*"(\w+)"', text)]
            for pair in found:
                pairs.setdefault(pair, set()).add(rel)
    return pairs


def main():
    doc = yaml.safe_load(open(DOC, encoding="utf-8"))
    docs = documented(doc)
    if "--pairs" in sys.argv[1:]:
        for status, code in sorted(docs):
            print(status, code)
        return 0
    schema = json.load(open(SCHEMA, encoding="utf-8"))
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(doc), key=str)
    for e in errors:
        print(f"openapi: {'/'.join(map(str, e.absolute_path))}: {e.message}", file=sys.stderr)
    prod = produced()
    bad = len(errors)
    for pair in sorted(set(prod) - set(docs)):
        print(f"openapi: {pair[0]} {pair[1]} is answered ({', '.join(sorted(prod[pair]))}) "
              "but not documented in docs/openapi.yaml", file=sys.stderr)
        bad += 1
    for pair in sorted(set(docs) - set(prod)):
        print(f"openapi: {pair[0]} {pair[1]} is documented ({', '.join(sorted(docs[pair]))}) "
              "but no source answers it", file=sys.stderr)
        bad += 1
    if bad:
        return 1
    print(f"openapi: docs/openapi.yaml is valid OpenAPI 3.1; its {len(docs)} (status, code) "
          f"pairs are those of the sources")
    return 0


if __name__ == "__main__":
    sys.exit(main())
