"""Repairing fixed-shape exports: the golden/dynamize corpus through four tools.

Every model in golden/dynamize was traced at one shape; PyTorch's outputs at three other shapes
are saved beside it. For each model and tool this counts the other shapes at which the tool's
result runs in onnxruntime and matches PyTorch (atol 1e-4, rtol 1e-3):

- ``update_model_dims``: onnx's ``onnx.tools.update_model_dims.update_inputs_outputs_dims``,
  naming the dims the corpus frees (one model for every shape);
- ``onnxsim``: ``onnxsim.simplify(..., overwrite_input_shapes=...)`` re-run for each shape;
- ``onnxslim``: ``onnxslim.slim(..., input_shapes=[...])`` (its input-shape modification) re-run
  for each shape;
- ``onnxopt``: ``-p dynamize`` with the corpus's dynamic spec (one model for every shape), and
  ``--dynamize-values`` where the corpus notes a value equal to a size (seq_mean_div).

    python benchmarks/dynamize_demo.py [--only NAME] [--markdown]

``--zoo`` runs golden/dynamize/zoo.py's architectures instead, with one more column where
``export.py --zoo --reexport`` has run: the same module re-exported with dynamic axes ("not run"
where it has not). onnxopt is counted over two denominators: the sizes the file allows (every
--constraint and bound the repair needed) and issue 17's own (only sizes beyond a folded table
or a table's rows left out).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

CORPUS = Path(__file__).resolve().parent.parent / "golden" / "dynamize"
TOOLS = ("update_model_dims", "onnxsim", "onnxslim", "onnxopt")
TRIES = 6  # onnxopt runs again with the --constraint its refusal suggests, as a user would


def _session(proto_or_bytes):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 4
    data = proto_or_bytes if isinstance(proto_or_bytes, bytes) else \
        proto_or_bytes.SerializeToString()
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def _shapes(case: str, corpus: Path = CORPUS):
    exp = np.load(corpus / f"{case}.expected.npz")
    out = []
    k = 0
    while any(f.startswith(f"shape{k}/") for f in exp.files):
        pre = f"shape{k}/"
        feeds = {f[len(pre) + 6:]: exp[f] for f in exp.files if f.startswith(pre + "input:")}
        outs = {f[len(pre) + 7:]: exp[f] for f in exp.files if f.startswith(pre + "output:")}
        out.append((feeds, outs))
        k += 1
    return out


def _matches(sess, feeds, outs) -> tuple[bool, str]:
    try:
        got = sess.run(None, feeds)
    except Exception as e:  # noqa: BLE001 - a failure to run is a result
        return False, "error: " + str(e).splitlines()[0][:80]
    for o, g in zip(sess.get_outputs(), got):
        want = outs[o.name]
        if g.shape != want.shape:
            return False, f"wrong shape {list(g.shape)}"
        if not np.allclose(g, want, atol=1e-4, rtol=1e-3):
            return False, f"wrong values (max abs {np.max(np.abs(g - want)):.3g})"
    return True, "match"


@contextlib.contextmanager
def _quiet():
    """Peers print progress; keep the table readable (fd-level, they print from C++ too)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


def _spec(meta: dict) -> str:
    return ";".join(f"{name}:" + ",".join(f"{ax}={sym}" for ax, sym in dims.items())
                    for name, dims in meta["dynamic"].items())


def _one_model_for_all(make, shapes) -> list[tuple[bool, str]]:
    try:
        with _quiet():
            sess = _session(make())
    except Exception as e:  # noqa: BLE001
        return [(False, "tool failed: " + str(e).splitlines()[0][:80])] * len(shapes)
    return [_matches(sess, f, o) for f, o in shapes]


def _per_shape(make, shapes) -> list[tuple[bool, str]]:
    out = []
    for feeds, outs in shapes:
        try:
            with _quiet():
                sess = _session(make({k: list(v.shape) for k, v in feeds.items()}))
        except Exception as e:  # noqa: BLE001
            out.append((False, "tool failed: " + str(e).splitlines()[0][:80]))
            continue
        out.append(_matches(sess, feeds, outs))
    return out


def run_case(case: str) -> dict:
    meta = json.loads((CORPUS / f"{case}.json").read_text())
    return run_model(str(CORPUS / f"{case}.onnx"), meta, _shapes(case)[1:],
                     case.startswith("seq_mean_div"))


def run_model(path: str, meta: dict, shapes: list, values: bool = False,
              constraints: bool = False) -> dict:
    """The four tools on one model at ``shapes`` (the saved shapes other than the trace one).
    With ``constraints``, onnxopt is re-run with the --constraint its refusal suggests (at most
    TRIES times), and ``res["constraint"]`` says which it used."""
    import onnx

    res: dict = {"constraint": ""}

    def update_dims():
        from onnx.tools.update_model_dims import update_inputs_outputs_dims

        m = onnx.load(path)
        ins = {}
        for vi in m.graph.input:
            dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
            for ax, sym in meta["dynamic"].get(vi.name, {}).items():
                dims[int(ax)] = sym
            ins[vi.name] = dims
        outs = {vo.name: [f"{vo.name}_{k}" for k in range(len(vo.type.tensor_type.shape.dim))]
                for vo in m.graph.output}
        return update_inputs_outputs_dims(m, ins, outs)

    def onnxsim_at(shape):
        import onnxsim

        m, _ = onnxsim.simplify(onnx.load(path), overwrite_input_shapes=shape)
        return m

    def onnxslim_at(shape):
        import onnxslim

        return onnxslim.slim(onnx.load(path), input_shapes=[
            f"{k}:{','.join(map(str, v))}" for k, v in shape.items()])

    def onnxopt_repair(spec=None):
        import re

        import onnxopt
        from onnxopt.errors import OnnxoptError
        from onnxopt.ir import lower_model
        from onnxopt.passes import PassManager
        from onnxopt.passes.pipeline import PassSpec

        for attempt in range(TRIES):
            m = onnxopt.load(path)
            opts = {"dynamic": spec or _spec(meta), "constraint": res["constraint"]}
            if values:
                opts["values"] = True
            try:
                PassManager([PassSpec("dynamize", opts)]).run(m)
                res["bounds"] = m.metadata_props.get("onnxopt.dynamize.bounds", "")
                return lower_model(m)
            except OnnxoptError as e:
                more = re.findall(r"--constraint '([^']+)'", str(e).splitlines()[0])
                if not constraints or not more or attempt == TRIES - 1:
                    res["refusal"] = str(e).splitlines()[0]
                    raise
                given = [*res["constraint"].split(";"), *(c for m in more
                                                          for c in m.split("' --constraint '"))]
                res["constraint"] = ";".join(dict.fromkeys(filter(None, given)))
                if "table" in str(e).splitlines()[0]:  # a table folded at the trace length
                    res["table_bounds"] = res.get("table_bounds", []) + [
                        c for m in more for c in m.split("' --constraint '") if "<=" in c]
        raise AssertionError("unreachable")

    def onnxopt_partial():
        """When onnxopt refuses a size ("seq cannot be freed: ..."), what freeing the others
        gives (reported beside the table, not counted)."""
        import re

        from onnxopt.errors import OnnxoptError

        try:
            onnxopt_repair()
            return None
        except OnnxoptError as e:
            m = re.search(r"dynamize: (\w+(?: and \w+)*) cannot be freed", str(e))
            if not m:
                return None
            refused = set(m.group(1).split(" and "))
        keep = {name: {ax: sym for ax, sym in dims.items() if sym not in refused}
                for name, dims in meta["dynamic"].items()}
        spec = ";".join(f"{n}:" + ",".join(f"{a}={s}" for a, s in d.items())
                        for n, d in keep.items() if d)
        return sorted(refused), spec, _one_model_for_all(lambda: onnxopt_repair(spec), shapes)

    t = {}
    for tool, fn in (("update_model_dims", lambda: _one_model_for_all(update_dims, shapes)),
                     ("onnxsim", lambda: _per_shape(onnxsim_at, shapes)),
                     ("onnxslim", lambda: _per_shape(onnxslim_at, shapes)),
                     ("onnxopt", lambda: _one_model_for_all(onnxopt_repair, shapes))):
        t0 = time.perf_counter()
        res[tool] = fn()
        t[tool] = time.perf_counter() - t0
    res["seconds"] = t
    res["partial"] = None if constraints else onnxopt_partial()
    return res


def _allowed(meta: dict, shapes: list, constraint: str) -> list[bool]:
    """Which shapes the file's information allows: within every NAME<=N the repair assumed."""
    bounds, mods = {}, {}
    for c in filter(None, (x.strip() for x in constraint.split(";"))):
        if "<=" in c:
            name, n = c.split("<=")
            bounds[name.strip()] = int(n)
        elif "%" in c:
            name, m = c.split("%")
            mods[name.strip()] = int(m.split("==")[0])
    out = []
    for feeds, _ in shapes:
        ok = True
        for name, dims in meta["dynamic"].items():
            for ax, sym in dims.items():
                size = feeds[name].shape[int(ax)]
                if sym in bounds and size > bounds[sym] or sym in mods and size % mods[sym]:
                    ok = False
        out.append(ok)
    return out


def _issue_bounds(r: dict) -> list[str]:
    """The bounds issue 17's denominator allows for: a table folded at the trace length (the
    --constraint a folded-table refusal suggested) or a table's rows (a bound the repair found
    itself). Moduli and other bounds (a Resize baked at the trace) count as misses there."""
    given = {c.replace(" ", "") for c in r["constraint"].split(";")}
    found = [b.strip() for b in r.get("bounds", "").split(";")
             if b.strip() and b.replace(" ", "") not in given]
    return found + r.get("table_bounds", [])


def _pct(a: int, b: int) -> str:
    return f"{100 * a / b:.1f}%" if b else "-"


def _pattern(refusal: str) -> str:
    """A refusal, shortened to its node and pattern for the table."""
    text = refusal.removeprefix("dynamize: ").replace("|", "/")
    return text[:150] + ("..." if len(text) > 150 else "")


def _reexport(folder: Path, name: str, exporter: str, total: dict) -> tuple[str, str]:
    """The re-export with dynamic axes (zoo.py --reexport): its cell and its reason, if any."""
    path = folder / "reexport" / f"{name}.json"
    if not path.exists():
        total["not_run"] = total.get("not_run", 0) + 1
        return "not run", ""
    r = json.loads(path.read_text())["reexport"][exporter]
    total["reexport"] = total.get("reexport", 0) + r["ok"]
    total["reexport_of"] = total.get("reexport_of", 0) + r["of"]
    return f"{r['ok']}/{r['of']}", "re-export: " + _pattern(r["why"]) if r["why"] else ""


def zoo_main(folder: Path, markdown: bool, only: str | None = None) -> int:
    """The zoo (golden/dynamize/zoo.py): every architecture and exporter through the tools."""
    rows, totals = [], {}
    for js in sorted(folder.glob("*.json")):
        meta = json.loads(js.read_text())
        name = meta["name"]
        if only and name != only:
            continue
        shapes = _shapes(name, folder)[1:]
        for ex in ("script", "dynamo"):
            path = folder / f"{name}.{ex}.onnx"
            if not path.exists():
                continue
            r = run_model(str(path), meta, shapes, constraints=True)
            allowed = _allowed(meta, shapes, ";".join([r["constraint"], r.get("bounds", "")]))
            tables = _issue_bounds(r)
            issue = _allowed(meta, shapes, ";".join(tables))
            t = totals.setdefault(ex, {k: 0 for k in (*TOOLS, "allowed", "shapes", "wrong",
                                                      "ok_allowed", "issue", "ok_issue")})
            row = [name, ex]
            for tool in TOOLS:
                ok = sum(1 for good, _ in r[tool] if good)
                t[tool] += ok
                row.append(f"{ok}/{len(shapes)}")
            ok_allowed = sum(1 for (good, _), a in zip(r["onnxopt"], allowed) if good and a)
            ok_issue = sum(1 for (good, _), a in zip(r["onnxopt"], issue) if good and a)
            wrong = sum(1 for good, why in r["onnxopt"] if not good and why.startswith("wrong"))
            t["allowed"] += sum(allowed)
            t["ok_allowed"] += ok_allowed
            t["issue"] += sum(issue)
            t["ok_issue"] += ok_issue
            t["shapes"] += len(shapes)
            t["wrong"] += wrong
            note = r.get("refusal")
            note = f"refused: {_pattern(note)}" if note else \
                (f"--constraint '{r['constraint']}'" if r["constraint"] else "")
            cell, why = _reexport(folder, name, ex, t)
            row += [f"{ok_allowed}/{sum(allowed)}", f"{ok_issue}/{sum(issue)}", cell,
                    "; ".join(filter(None, [note, why]))]
            rows.append(row)
            print("  " + " ".join(row[:7]), file=sys.stderr, flush=True)
    head = ["model", "exporter", *TOOLS, "onnxopt, allowed sizes", "onnxopt, issue's sizes",
            "re-export, dynamic axes", "notes"]
    for ex, t in totals.items():
        rows.append([f"total ({ex})", ex, *[f"{t[k]}/{t['shapes']}" for k in TOOLS],
                     f"{t['ok_allowed']}/{t['allowed']} ({_pct(t['ok_allowed'], t['allowed'])})",
                     f"{t['ok_issue']}/{t['issue']} ({_pct(t['ok_issue'], t['issue'])})",
                     f"{t.get('reexport', 0)}/{t.get('reexport_of', 0)}",
                     f"{t['wrong']} wrong results" + (f"; re-export not run for {t['not_run']}"
                                                      if t.get("not_run") else "")])
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join(["---", "---"] + ["---:"] * (len(TOOLS) + 3) + ["---"]) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |" if markdown else "  ".join(row))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="run one case")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    ap.add_argument("-v", "--verbose", action="store_true", help="say why each shape failed")
    ap.add_argument("--zoo", nargs="?", const="build/dynamize_zoo", metavar="DIR",
                    help="run the architecture zoo (golden/dynamize/zoo.py's output) instead")
    args = ap.parse_args(argv)
    if args.zoo:
        return zoo_main(Path(args.zoo), args.markdown, args.only)
    cases = sorted(p.stem for p in CORPUS.glob("*.onnx"))
    if args.only:
        cases = [c for c in cases if c == args.only]
    rows = []
    notes: list[str] = []
    totals = {t: 0 for t in TOOLS}
    n_shapes = 0
    for case in cases:
        r = run_case(case)
        n = len(r["onnxopt"])
        n_shapes += n
        row = [case]
        for tool in TOOLS:
            ok = sum(1 for good, _ in r[tool] if good)
            totals[tool] += ok
            row.append(f"{ok}/{n}")
        rows.append(row)
        if r["partial"]:
            refused, spec, got = r["partial"]
            ok = sum(1 for good, _ in got if good)
            notes.append(f"{case}: onnxopt refuses to free {', '.join(refused)} (the graph bakes "
                         f"it into a table; see -v); with --dynamic {spec} it matches at "
                         f"{ok}/{len(got)} (the shapes that keep {', '.join(refused)} as traced)")
        if args.verbose:
            for tool in TOOLS:
                for k, (good, why) in enumerate(r[tool], start=1):
                    if not good:
                        print(f"  {case} {tool} shape{k}: {why}", file=sys.stderr)
    head = ["model", *TOOLS]
    rows.append(["total", *[f"{totals[t]}/{n_shapes}" for t in TOOLS]])
    models_ok = {t: 0 for t in TOOLS}
    for row in rows[:-1]:
        for t, cell in zip(TOOLS, row[1:]):
            a, b = cell.split("/")
            models_ok[t] += a == b
    rows.append(["models fully repaired", *[f"{models_ok[t]}/{len(cases)}" for t in TOOLS]])
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join(["---"] + ["---:"] * len(TOOLS)) + "|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        w = max(len(r[0]) for r in rows)
        print(f"{head[0]:<{w}}  " + "  ".join(f"{h:>17}" for h in head[1:]))
        for row in rows:
            print(f"{row[0]:<{w}}  " + "  ".join(f"{c:>17}" for c in row[1:]))
        print("(cells: saved shapes other than the trace shape at which the result runs and "
              "matches PyTorch)")
    for n in notes:
        print(n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
