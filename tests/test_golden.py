"""Golden cases: every ``golden/<pass>/<case>.onnxtxt`` is run through its pipeline.

The first line names the pipeline, as on the command line (``# RUN: -p identity,dce`` or
``# RUN: --preset default``; add ``--no-verify`` for a model onnxruntime cannot run). The result's
golden-mode text must equal ``<case>.expected.onnxtxt``, or, when there is no expected file, the
case must come out unchanged with no pass reporting a change. Every case is also run in
onnxruntime against the original. ``pytest --update-golden`` rewrites the expected files.
See golden/README.md.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from onnxopt.ir import print_model
from onnxopt.passes import PassManager
from onnxopt.testing import assert_equivalent, model_from_text, to_proto

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
EXPECTED_SUFFIX = ".expected.onnxtxt"


@dataclass
class Header:
    pipeline: str
    verify: bool = True


def parse_header(path: Path, text: str) -> Header:
    first = text.split("\n", 1)[0].strip()
    if not first.startswith("# RUN:"):
        raise ValueError(f"{path}: the first line must be '# RUN: -p PIPELINE'")
    args = shlex.split(first[len("# RUN:"):])
    pipeline, verify = None, True
    while args:
        a = args.pop(0)
        if a in ("-p", "--preset") and args:
            pipeline = args.pop(0)
        elif a == "--no-verify":
            verify = False
        else:
            raise ValueError(f"{path}: unknown RUN argument {a!r}")
    if not pipeline:
        raise ValueError(f"{path}: the RUN line names no pipeline")
    return Header(pipeline, verify)


def golden_cases() -> list[Path]:
    return sorted(p for p in GOLDEN.glob("*/*.onnxtxt") if not p.name.endswith(EXPECTED_SUFFIX))


def _normalize(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines()) + "\n"


@pytest.mark.parametrize("case", golden_cases(),
                         ids=lambda p: f"{p.parent.name}/{p.name[:-len('.onnxtxt')]}")
def test_golden(case: Path, update_golden: bool) -> None:
    text = case.read_text()
    header = parse_header(case, text)
    original = to_proto(text)
    unchanged = _normalize(print_model(model_from_text(text)))
    model = model_from_text(text)
    report = PassManager(header.pipeline, verify_each=True, check_modified=True).run(model)
    got = _normalize(print_model(model))
    expected_path = case.with_name(case.name[:-len(".onnxtxt")] + EXPECTED_SUFFIX)

    if update_golden:
        if got == unchanged:
            expected_path.unlink(missing_ok=True)
        else:
            expected_path.write_text(got)
    elif expected_path.exists():
        expected = _normalize(expected_path.read_text())
        assert got == expected, (
            f"{case.relative_to(GOLDEN)}: output differs from {expected_path.name} "
            f"(pipeline {header.pipeline}; rerun with --update-golden and review the diff)\n"
            f"--- expected\n{expected}--- got\n{got}")
    else:
        changed = [r.spec for r in report.records if r.modified]
        assert got == unchanged and not changed, (
            f"{case.relative_to(GOLDEN)} has no expected file, so it must come out unchanged; "
            f"passes that reported a change: {changed}\n--- got\n{got}")

    if header.verify:
        assert_equivalent(original, model)


def test_golden_cases_are_found() -> None:
    """The harness sees the cases (a glob typo would otherwise pass vacuously)."""
    found = {p.parent.name for p in golden_cases()}
    assert {"dce", "identity", "cse"} <= found
