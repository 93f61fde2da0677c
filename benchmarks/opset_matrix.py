"""Opset conversion matrix: every model of golden/models, tests/models and golden/dynamize
converted to every opset from its own down to 11 (and up to 23), by onnx.version_converter and
by onnxopt's ``opset`` pass.

A pair counts as converted when the output declares the target opset, passes
``onnx.checker.check_model(full_check=True)`` and matches the original in onnxruntime at two
bindings (onnxopt's verifier). Prints a markdown table and the refusals (each names its op).

    python benchmarks/opset_matrix.py [--low 11] [--high 23] [--top N] [--models GLOB ...]
        [--no-converter]
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT = ["golden/models/*.onnx", "tests/models/*.onnx", "golden/dynamize/*.onnx"]


def _verified(original, converted_proto, target: int) -> str:
    """'ok' or why the converted model does not count."""
    import onnx
    from onnxopt.verify import VerifyOptions, verify

    got = {o.domain or "": o.version for o in converted_proto.opset_import}.get("")
    if got is None:
        got = {o.domain: o.version for o in converted_proto.opset_import}.get("ai.onnx")
    if got != target:
        return f"declares opset {got}"
    try:
        onnx.checker.check_model(converted_proto, full_check=True)
    except Exception as e:  # noqa: BLE001 (a row, not a crash)
        return f"checker: {str(e).strip().splitlines()[0][:100]}"
    rep = verify(original, converted_proto, VerifyOptions(min_bindings=2))
    return "ok" if rep.status == "ok" else f"verify {rep.status}: {rep.reason[:100]}"


def by_converter(proto, target: int) -> str:
    from onnx import version_converter

    try:
        out = version_converter.convert_version(proto, target)
    except Exception as e:  # noqa: BLE001 (the converter raises many types)
        return "converter: " + (str(e).strip().splitlines() or [type(e).__name__])[0][-80:]
    return _verified(proto, out, target)


def by_onnxopt(proto, target: int) -> str:
    from onnxopt import optimize
    from onnxopt.errors import OnnxoptError
    from onnxopt.ir import lower_model

    try:
        res = optimize(proto, f"opset{{target={target}}}", verify=False)
    except OnnxoptError as e:
        return "refused: " + str(e).strip().splitlines()[0][:200]
    return _verified(proto, lower_model(res.model), target)


def pairs(paths: list[str], low: int, high: int, top: int = 99):
    import onnx

    for path in paths:
        proto = onnx.load(path)
        src = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
        if src is None:
            continue
        for t in list(range(min(src - 1, top), low - 1, -1)) + list(range(src + 1, high + 1)):
            yield path, proto, src, t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--low", type=int, default=11)
    ap.add_argument("--high", type=int, default=23)
    ap.add_argument("--top", type=int, default=99, help="highest target when converting down")
    ap.add_argument("--models", nargs="*", default=DEFAULT)
    ap.add_argument("--no-converter", action="store_true", help="skip onnx.version_converter")
    args = ap.parse_args(argv)
    paths = sorted(p for g in args.models for p in glob.glob(os.path.join(ROOT, g)))
    rows: dict[str, Counter] = {}
    failures = []
    for path, proto, src, t in pairs(paths, args.low, args.high, args.top):
        name = os.path.relpath(path, ROOT)
        row = rows.setdefault(name, Counter())
        way = "down" if t < src else "up"
        row[way] += 1
        mine = by_onnxopt(proto, t)
        row[f"onnxopt {way}"] += mine == "ok"
        if mine != "ok":
            failures.append(f"{name} {src}->{t}: onnxopt: {mine}")
            row["refused" if mine.startswith("refused") else "wrong"] += 1
        if not args.no_converter:
            row[f"converter {way}"] += by_converter(proto, t) == "ok"
        print(f"{name} {src}->{t}: {mine}", file=sys.stderr, flush=True)
    print("| model | down pairs | converter | onnxopt | up pairs | converter | onnxopt | "
          "onnxopt refused (named) | onnxopt wrong |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    total = Counter()
    keys = ("down", "converter down", "onnxopt down", "up", "converter up", "onnxopt up",
            "refused", "wrong")
    for name, row in rows.items():
        total.update(row)
        print(f"| {name} | " + " | ".join(str(row[k]) for k in keys) + " |")
    print("| **all** | " + " | ".join(f"**{total[k]}**" for k in keys) + " |")
    for f in failures:
        print(f"- {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
