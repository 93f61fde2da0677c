"""Same outputs before and after a change to the passes (issue 18, "no change in any output").

    git worktree add /tmp/base <base commit>
    python benchmarks/incremental_check.py --base-tree /tmp/base [--new-tree DIR] [--work /tmp/inc]
        [--reuse-base] [--sizes 10000,50000] [-- more onnxopt arguments]
    python benchmarks/incremental_check.py --base-tree /tmp/base --timing 50000,100000

Runs ``onnxopt MODEL -o OUT --json`` (the default preset, verification on) on every model of
``tests/models`` and ``golden/models`` and on synthetic graphs of 10,000 and 50,000 nodes
(``benchmarks/synth.py``, generated into the work folder), once with the code of ``--base-tree``
and once with this checkout, and compares: the saved files byte for byte, else node count, op
histogram and the verification result. Exit status 1 when any model differs in nodes, ops or
verification. Also prints each side's node visits (``ir.nodelist.node_visits``, summed over the
passes) and pipeline seconds.

The base runs as ``python -m onnxopt.cli.main`` from a folder that maps the package names to the
base tree's folders the way ``pyproject.toml``'s ``package-dir`` does (symbolic links), with
``PYTHONPATH`` unset, so that it imports the base tree and not the editable install.

``--timing SIZES``: per pass CPU seconds and node visits of the default pipeline, its first run
and the later ones apart, and skipped runs (one process per side), then each side's whole process under ``/usr/bin/time`` (wall, user CPU,
peak RSS; best of ``--repeat`` by CPU), ``--no-verify`` and verified, beside the floor: a process
that imports onnx, onnxruntime and numpy and loads and saves the model.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
from _bytecode import compile_tree  # noqa: E402 - benchmarks/ is put on the path just above
PACKAGE_DIRS = {"ir": "ir", "passes": "passes", "cli": "cli"}  # onnxopt.<name> -> folder


def shim(tree: str, work: str, label: str) -> str:
    """A folder where ``import onnxopt`` finds ``tree``'s code (api/ is the package itself)."""
    top = os.path.join(work, label + "_pkg")
    pkg = os.path.join(top, "onnxopt")
    os.makedirs(pkg, exist_ok=True)
    api = os.path.join(tree, "api")
    links = {name: os.path.join(api, name) for name in os.listdir(api)}
    links.update({sub: os.path.join(tree, folder) for sub, folder in PACKAGE_DIRS.items()})
    for name, target in links.items():
        link = os.path.join(pkg, name)
        if os.path.islink(link):
            os.unlink(link)
        os.symlink(os.path.abspath(target), link)
    probe = subprocess.run([sys.executable, "-c", "import onnxopt.passes.manager as m; "
                            "print(m.__file__)"], cwd=top, env=_env(), capture_output=True,
                           text=True, check=True).stdout.strip()
    if not probe.startswith(top):
        raise SystemExit(f"the base imports {probe}, not {top}")
    return top


def _env() -> dict:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


def models(work: str, sizes: list[int]) -> list[str]:
    out = sorted(glob.glob(os.path.join(ROOT, "tests/models/*.onnx")))
    out += sorted(glob.glob(os.path.join(ROOT, "golden/models/*.onnx")))
    for n in sizes:
        path = os.path.join(work, f"synth{n}.onnx")
        if not os.path.exists(path):
            subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks/synth.py"), "--nodes",
                            str(n), "-o", path], check=True, capture_output=True)
        out.append(path)
    return out


def run(cwd: str, model: str, out_dir: str, extra: list[str]) -> dict:
    """One ``onnxopt`` run; its JSON summary (or ``{"error": ...}``)."""
    os.makedirs(out_dir, exist_ok=True)
    name = os.path.splitext(os.path.basename(model))[0]
    out = os.path.join(out_dir, name + ".onnx")
    p = subprocess.run([sys.executable, "-m", "onnxopt.cli.main", model, "-o", out, "--json",
                        *extra], cwd=cwd, env=_env(), capture_output=True, text=True)
    try:
        summary = json.loads(p.stdout)
    except ValueError:
        last = (p.stderr.strip().splitlines() or ["no output"])[-1]
        summary = {"error": last, "rc": p.returncode}
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        json.dump(summary, f)
    return summary


def _facts(s: dict) -> tuple:
    """What must not change: nodes, op histogram, initializers, verification."""
    if "error" in s:
        return ("error", s["error"])
    after = s.get("after", {})
    ver = s.get("verification") or {}
    return (after.get("nodes"), tuple(sorted((after.get("ops") or {}).items())),
            after.get("initializers"), ver.get("status"), s.get("verified"))


def _visits(s: dict) -> int:
    return sum(p.get("node_visits", 0) for p in s.get("passes", []))


def _same_bytes(a: str, b: str) -> bool:
    if not (os.path.exists(a) and os.path.exists(b)):
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


# Per pass CPU seconds and node visits of the default pipeline, in one process (the manager's
# clock made the process's CPU clock: other load on the machine does not count).
_PER_PASS = """
import json, sys, time, types
import onnxopt
import onnxopt.passes.manager as manager
from onnxopt.passes.presets import PRESETS
manager.time = types.SimpleNamespace(perf_counter=time.process_time)
model = onnxopt.load(sys.argv[1])
rows = {}
for r in manager.PassManager(PRESETS["default"]).run(model).records:
    row = rows.setdefault(r.name, [0, 0.0, 0.0, 0, 0, 0])
    later = row[0] > 0
    row[0] += 1; row[1 + later] += r.seconds; row[3 + later] += r.node_visits
    row[5] += r.stats.get("fixpoint.skipped", 0)
print(json.dumps(rows))
"""
_FLOOR = "import onnx,onnxruntime,numpy,sys; onnx.save(onnx.load(sys.argv[1]), sys.argv[2])"


def per_pass(cwd: str, model: str) -> dict:
    p = subprocess.run([sys.executable, "-c", _PER_PASS, model], cwd=cwd, env=_env(),
                       capture_output=True, text=True, check=True)
    return json.loads(p.stdout)


def whole(cwd: str, args: list[str], repeat: int) -> tuple[float, float, int]:
    """The fastest of ``repeat`` runs under ``/usr/bin/time``: wall s, user CPU s, peak KB."""
    best = None
    for _ in range(repeat):
        p = subprocess.run(["/usr/bin/time", "-f", "%e %U %M", sys.executable, *args], cwd=cwd,
                           env=_env(), capture_output=True, text=True)
        wall, user, rss = p.stderr.strip().splitlines()[-1].split()
        run = (float(wall), float(user), int(rss))
        best = run if best is None or run[1] < best[1] else best
    return best


def timing(sides: dict, work: str, sizes: list[int], repeat: int) -> None:
    """Per pass (CPU seconds, node visits, skipped runs) and whole process (wall, user, RSS)
    for each side, with the load+save floor; printed as Markdown tables."""
    for n in sizes:
        model = models(work, [n])[-1]
        out = os.path.join(work, "timing.onnx")
        rows = {side: per_pass(cwd, model) for side, cwd in sides.items()}
        print(f"\n{n} nodes, per pass: runs, CPU s and node visits of the first run + the "
              "later ones")
        print("| pass | " + " | ".join(f"{s}: runs | {s}: CPU s | {s}: visits" for s in sides)
              + " |")
        print("|---|" + "---:|" * 3 * len(sides))
        for name in rows[next(iter(sides))]:
            cells = [rows[s].get(name, [0] * 6) for s in sides]
            print(f"| {name} | " + " | ".join(
                f"{c[0]}{f' ({c[5]} skipped)' if c[5] else ''} | {c[1]:.2f} + {c[2]:.2f} | "
                f"{c[3]:,} + {c[4]:,}" for c in cells) + " |")
        print(f"\n{n} nodes, whole process (best of {repeat} by CPU): wall s / user s / peak MB")
        floor = whole(ROOT, ["-c", _FLOOR, model, out], repeat)
        print(f"| floor (load+save) | {floor[0]:.2f} / {floor[1]:.2f} / {floor[2] // 1024} |")
        for side, cwd in sides.items():
            for flags in (["--no-verify"], []):
                t = whole(cwd, ["-m", "onnxopt.cli.main", model, "-o", out, "-q", *flags],
                          repeat)
                print(f"| {side} {' '.join(flags) or 'verified'} | {t[0]:.2f} / {t[1]:.2f} / "
                      f"{t[2] // 1024} | {t[1] / floor[1]:.1f}x floor (user) |", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base-tree", required=True, help="a checkout of the base commit")
    ap.add_argument("--new-tree", help="the tree to compare (default: this checkout; another "
                    "tree keeps work in progress elsewhere in this one out of the comparison)")
    ap.add_argument("--work", default="/tmp/incremental_check")
    ap.add_argument("--sizes", default="10000,50000", help="synthetic graph sizes")
    ap.add_argument("--reuse-base", action="store_true", help="keep base results already there")
    ap.add_argument("--timing", metavar="SIZES", help="instead of comparing outputs, time "
                    "the default pipeline per pass and as a whole process on synthetic graphs "
                    "of these sizes (e.g. 50000,100000)")
    ap.add_argument("--repeat", type=int, default=3, help="whole-process runs per measurement")
    ap.add_argument("extra", nargs="*", help="more onnxopt arguments (after --)")
    a = ap.parse_args(argv)
    os.makedirs(a.work, exist_ok=True)
    base_cwd = shim(a.base_tree, a.work, "base")
    new_cwd = shim(a.new_tree, a.work, "new") if a.new_tree else ROOT
    if a.timing:
        for tree in (a.base_tree, a.new_tree or ROOT):
            compile_tree(tree)  # timed as installed, with bytecode (see _bytecode.py)
        timing({"base": base_cwd, "new": new_cwd}, a.work,
               [int(x) for x in a.timing.split(",")], a.repeat)
        return 0
    sizes = [int(s) for s in a.sizes.split(",") if s]
    bad = 0
    print(f"{'model':28} {'nodes':>13} {'verified':>11} {'bytes':>6} {'visits base -> new':>22} "
          f"{'seconds':>13}")
    for m in models(a.work, sizes):
        name = os.path.splitext(os.path.basename(m))[0]
        base_json = os.path.join(a.work, "base", name + ".json")
        if a.reuse_base and os.path.exists(base_json):
            with open(base_json) as f:
                b = json.load(f)
        else:
            b = run(base_cwd, m, os.path.join(a.work, "base"), a.extra)
        n = run(new_cwd, m, os.path.join(a.work, "new"), a.extra)
        same = _facts(b) == _facts(n)
        bad += not same
        identical = _same_bytes(os.path.join(a.work, "base", name + ".onnx"),
                                os.path.join(a.work, "new", name + ".onnx"))
        nodes = f"{_facts(b)[0]}/{_facts(n)[0]}"
        ver = f"{b.get('verified')}/{n.get('verified')}"
        print(f"{name:28} {nodes:>13} {ver:>11} {'same' if identical else 'diff':>6} "
              f"{_visits(b):>10} -> {_visits(n):<9} {b.get('seconds', 0):6.2f}/"
              f"{n.get('seconds', 0):<6.2f}{'' if same else '  CHANGED'}", flush=True)
    print("no change in any output" if not bad else f"{bad} model(s) changed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
