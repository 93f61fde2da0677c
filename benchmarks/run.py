"""Benchmark onnxopt against its peers: python benchmarks/run.py [options]

    python benchmarks/run.py --models light,shared,synth --tools onnxsim,floor --md out.md --json out.json

Every (model, tool) pair runs in its own process with a time limit; the numbers are those a user sees:
wall time of the whole process (interpreter start and imports included) and its peak RSS. The result
is then measured in a second process (benchmarks/_eval.py): node counts, size on disk, max abs error
against the original in onnxruntime (graph optimizations disabled, seeded inputs suited to each
input) and the median onnxruntime latency on one thread, without and with ORT_ENABLE_ALL. Tools run
one after another, never in parallel, so they do not compete for the cores. With ``--repeat N`` each
model's tools are timed N times, interleaved, and the fastest wall is kept (the output is evaluated
once).

Models (--models): light (onnx's backend light models), shared (../shared/models, read in place),
golden (golden/models/*.onnx, skipped if absent), synth (benchmarks/synth.py at --synth-sizes nodes,
cached in benchmarks/.cache/) and external (the --external-gb GB external-data model; only when asked
for, it takes disk and minutes). Tools (--tools): onnxopt, onnxopt+verify, onnxsim, onnxslim,
onnxoptimizer, onnxscript (its optimizer, when installed), ort-basic, floor (imports of onnx, onnxruntime and numpy, onnx.load + onnx.save).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from _bytecode import compile_tree  # noqa: E402 - benchmarks/ is put on the path just above
from _exe import console_script  # noqa: E402

ALL_TOOLS = ["onnxopt", "onnxopt+verify", "onnxsim", "onnxslim", "onnxoptimizer", "onnxscript", "ort-basic",
             "floor"]
ALL_GROUPS = ["light", "shared", "golden", "synth", "external"]
DEFAULT_GROUPS = ["light", "shared", "golden", "synth"]
PEER_PACKAGES = ["onnx", "onnxruntime", "onnxsim", "onnxslim", "onnxoptimizer", "numpy", "protobuf", "sympy",
                 "torch", "onnxopt"]

# Inputs for ../shared/models, from its MANIFEST.md.
SHARED_SPECS = {
    "silero_vad_op15_ts.onnx": {"inputs": {
        "input": {"shape": [1, 576], "low": -1.0, "high": 1.0},
        "state": {"shape": [2, 1, 128], "std": 0.1},
        "sr": {"shape": [], "value": 16000},
    }},
    "magika_v3_3.onnx": {"inputs": {"bytes": {"shape": [1, 2048], "low": 0, "high": 257}}},
    "ppocrv4_det.onnx": {"inputs": {"x": {"shape": [1, 3, 320, 320]}}},
    "ppocr_mobile_v2_cls.onnx": {"inputs": {"x": {"shape": [1, 3, 48, 192]}}},
}
SYNTH_SPEC = {"dims": {"batch": 2, "seq": 8}}


@dataclass
class Model:
    name: str
    group: str
    path: str
    spec: dict = field(default_factory=dict)
    external: bool = False


# ---------------------------------------------------------------- models


def _size_label(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def _source_digest(path: str) -> str:
    import hashlib

    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:8]


def find_models(groups: list[str], cache: str, synth_sizes: list[int], external_gb: float) -> list[Model]:
    models: list[Model] = []
    for group in groups:
        if group == "light":
            import onnx

            folder = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
            for p in sorted(glob.glob(os.path.join(folder, "*.onnx"))):
                models.append(Model(os.path.basename(p)[:-5], group, p))
        elif group == "shared":
            folder = os.path.join(ROOT, "..", "shared", "models")
            if not os.path.isdir(folder):
                folder = "/work/shared/models"
            for p in sorted(glob.glob(os.path.join(folder, "*.onnx"))):
                models.append(Model(os.path.basename(p)[:-5], group, os.path.abspath(p),
                                    SHARED_SPECS.get(os.path.basename(p), {})))
        elif group == "golden":
            paths = sorted(glob.glob(os.path.join(ROOT, "golden", "models", "*.onnx")))
            if not paths:
                log("golden: no golden/models/*.onnx yet, skipped")
            for p in paths:
                io = p[:-5] + ".io.npz"  # seeded inputs from the exporter, when present
                spec = {"npz": io, "prefix": "shape0/input:"} if os.path.exists(io) else {}
                models.append(Model(os.path.basename(p)[:-5], group, p, spec))
        elif group == "synth":
            import synth

            os.makedirs(os.path.join(cache, "synth"), exist_ok=True)
            version = _source_digest(os.path.join(HERE, "synth.py"))  # a changed generator regenerates
            for n in synth_sizes:
                p = os.path.join(cache, "synth", f"synth_{n}_{version}.onnx")
                if not os.path.exists(p):
                    log(f"generating {p}")
                    m = synth.build(n)
                    with open(p + ".tmp", "wb") as f:
                        f.write(m.SerializeToString())
                    os.replace(p + ".tmp", p)
                models.append(Model(f"synth-{_size_label(n)}", group, p, SYNTH_SPEC))
        elif group == "external":
            folder = os.path.join(cache, "external")
            os.makedirs(folder, exist_ok=True)
            version = _source_digest(os.path.join(HERE, "synth.py"))
            p = os.path.join(folder, f"synth_external_{external_gb:g}gb_{version}.onnx")
            if not (os.path.exists(p) and os.path.exists(p + ".data")):
                log(f"generating {p} (+ {external_gb:g} GB of external data)")
                subprocess.run([sys.executable, os.path.join(HERE, "synth.py"), "--external-gb", str(external_gb),
                                "-o", p], check=True)
            models.append(Model(f"external-{external_gb:g}gb", group, p, SYNTH_SPEC, external=True))
        else:
            raise SystemExit(f"unknown model group {group!r}; choose from {','.join(ALL_GROUPS)}")
    return models


# ---------------------------------------------------------------- running


@dataclass
class Run:
    ok: bool
    wall_s: float
    peak_rss_mb: float
    error: str | None
    stdout: str
    cpu_s: float | None = None
    load: float | None = None


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _error_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return ""
    if any(ln.startswith("Traceback") for ln in lines):
        # The exception line is the last one that looks like "SomeError: message".
        for ln in reversed(lines):
            if re.match(r"^[\w.]+(Error|Exception|Fail\w*|Exit|Interrupt)\b", ln):
                return ln[:200]
        return lines[-1][:200]
    return lines[0][:200]


def run_timed(cmd: list[str], timeout: float, logdir: str) -> Run:
    """Run cmd in its own session under _timed.py; wall time, peak RSS and its first error line.

    The wrapper measures (see its docstring for why run.py cannot) and enforces the timeout; 30 s
    later run.py kills the whole session if it is still there. The wrapper's own start (about 20 ms, before it starts the clock) is not counted.
    """
    out_path, err_path = os.path.join(logdir, "stdout.txt"), os.path.join(logdir, "stderr.txt")
    res_path = os.path.join(logdir, "timing.json")
    if os.path.exists(res_path):
        os.remove(res_path)
    wrapped = [sys.executable, "-S", os.path.join(HERE, "_timed.py"), res_path, str(timeout), *cmd]
    timed_out = threading.Event()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(wrapped, stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)

        def kill() -> None:
            timed_out.set()
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout + 30, kill)  # backstop: _timed.py enforces the limit itself
        timer.start()
        proc.wait()
        wall = time.perf_counter() - t0
        timer.cancel()
    try:  # stragglers of the tool's own session (it should leave none)
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    with open(out_path, errors="replace") as f:
        stdout = f.read()
    with open(err_path, errors="replace") as f:
        stderr = f.read()
    rss, cpu, load = 0.0, None, None
    code = proc.returncode
    if os.path.exists(res_path):
        with open(res_path) as f:
            timing = json.load(f)
        wall, code = timing["wall_s"], timing["exit_code"]
        rss = timing["peak_mb"]  # the process tree's, a forked child beside it included
        cpu, load = timing["cpu_s"], timing["load_before"]
        if timing["timed_out"]:
            timed_out.set()
    if timed_out.is_set():
        return Run(False, wall, rss, f"timeout after {timeout:g} s", stdout, cpu, load)
    if code == 0:
        return Run(True, wall, rss, None, stdout, cpu, load)
    why = _error_line(stderr) or _error_line(stdout)
    if code < 0:
        why = f"killed by {signal.Signals(-code).name}" + (f": {why}" if why else "")
    return Run(False, wall, rss, why or f"exit code {code}", stdout, cpu, load)


def tool_command(tool: str, src: str, out: str, external: bool) -> list[str] | str:
    """The command for tool, or a string saying why it cannot run."""
    if tool in ("onnxopt", "onnxopt+verify"):
        exe = console_script("onnxopt")
        if exe is None:
            return "pending: onnxopt command not found (not installed yet)"
        cmd = [exe, src, "-o", out, "--preset", "default", "-q"]
        if tool == "onnxopt":
            cmd.insert(-1, "--no-verify")
        return cmd
    cmd = [sys.executable, os.path.join(HERE, "_worker.py"), tool, src, out]
    return cmd + ["--external"] if external else cmd


def evaluate(mode: str, model_path: str, refdir: str, spec: dict, timeout: float, logdir: str, runs: int) -> dict:
    cmd = [sys.executable, os.path.join(HERE, "_eval.py"), mode, model_path, refdir, "--spec", json.dumps(spec),
           "--runs", str(runs)]
    logdir = os.path.join(logdir, "eval")  # keep the tool's own logs
    os.makedirs(logdir, exist_ok=True)
    r = run_timed(cmd, timeout, logdir)
    if not r.ok:
        return {"eval_error": f"eval: {r.error}"}
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"eval_error": "eval printed no result"}


# ---------------------------------------------------------------- reporting


def _git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=False)
        return done.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info() -> dict:
    from importlib import metadata

    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    ram = None
    try:
        with open("/proc/meminfo") as f:
            kb = int(next(ln.split()[1] for ln in f if ln.startswith("MemTotal")))
            ram = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration):
        pass
    versions = {}
    for pkg in PEER_PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {"cpu": cpu, "cores": os.cpu_count(), "ram": ram, "os": platform.platform(),
            "python": platform.python_version(), "packages": versions}


def _fmt(v, spec: str = "", none: str = "") -> str:
    if v is None:
        return none
    if isinstance(v, float) and spec:
        return format(v, spec)
    return str(v)


def _fmt_err(v) -> str:
    if v is None:
        return ""
    if v == 0:
        return "0"
    return f"{v:.1e}"


COLUMNS = ["model", "tool", "result", "time s", "cpu s", "peak MB", "nodes", "w/o Const", "+subgraphs", "size MB",
           "max abs err", "ORT ms (no opt)", "ORT ms (all)"]


def row_cells(r: dict) -> list[str]:
    if r["tool"] == "(original)":
        result = r.get("eval_error") or "input"
    elif r["ok"]:
        result = "ok"
        if r.get("nonstd_nodes"):
            result += f", {r['nonstd_nodes']} non-std nodes"
        if r.get("wrong"):
            result += ", WRONG OUTPUT"
        if r.get("eval_error"):
            broken = r.get("max_abs_err") is None
            result = ("output does not run: " if broken else result + "; ") + r["eval_error"][:120]
    else:
        result = r.get("error") or "failed"
    result = result.replace("|", "\\|")
    return [r["model"], r["tool"], result, _fmt(r.get("wall_s"), ".2f"), _fmt(r.get("cpu_s"), ".2f"),
            _fmt(r.get("peak_rss_mb"), ".0f"),
            _fmt(r.get("nodes")), _fmt(r.get("nodes_noconst")), _fmt(r.get("nodes_all")),
            _fmt(r.get("size_mb"), ".2f"), _fmt_err(r.get("max_abs_err")),
            _fmt(r.get("lat_noopt_ms"), ".2f"), _fmt(r.get("lat_all_ms"), ".2f")]


def merge_runs(paths: list[str]) -> tuple[list[dict], dict]:
    """Rows of several --json files, grouped by model in first-seen order; one "(original)" row each."""
    runs = []
    for path in paths:
        with open(path) as f:
            runs.append(json.load(f))
    header = dict(runs[0])
    header.pop("rows")
    header["command"] = [r["command"] for r in runs] if len(runs) > 1 else runs[0]["command"]
    header["timeout"] = max(r["timeout"] for r in runs)
    by_model: dict[str, list[dict]] = {}
    for run in runs:
        for row in run["rows"]:
            rows = by_model.setdefault(row["model"], [])
            if row["tool"] == "(original)" and any(r["tool"] == "(original)" for r in rows):
                continue
            rows.append(row)
    return [r for rows in by_model.values() for r in rows], header


def markdown(rows: list[dict], header: dict) -> str:
    commands = header["command"] if isinstance(header["command"], list) else [header["command"]]
    out = ["# onnxopt benchmark", "", "Command" + ("s" if len(commands) > 1 else "") + ": "
           + "; ".join(f"`{c}`" for c in commands), ""]
    m = header["machine"]
    pk = ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v)
    out += [f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram']} RAM; {m['os']}; Python {m['python']}; {pk}.",
            "", (f"Timeout {header['timeout']:g} s per run. \"time s\" is the whole-process wall time "
                 "(interpreter start and imports included), \"cpu s\" its user+system CPU time, \"peak MB\" "
                 "its peak RSS."), ""]
    loads = [r["load"] for r in rows if r.get("load") is not None]
    if loads:
        out += [(f"1-minute load average before each run: median {sorted(loads)[len(loads) // 2]:.2f}, "
                 f"max {max(loads):.2f} on {m['cores']} cores (above ~1, other work inflated wall times)."), ""]
    synth = [r for r in rows if r["group"] == "synth" and r["tool"] != "(original)"]
    if synth:
        sizes = list(dict.fromkeys(r["model"] for r in synth))
        tools = list(dict.fromkeys(r["tool"] for r in synth))
        out += ["## Scaling on synthetic graphs (wall s, with CPU s in parentheses)", "", "| tool | " + " | ".join(sizes) + " |",
                "|---|" + "---|" * len(sizes)]
        for t in tools:
            cells = []
            for s in sizes:
                r = next((x for x in synth if x["tool"] == t and x["model"] == s), None)
                if r is None:
                    cells.append("")
                elif r["ok"]:
                    cpu = f" ({r['cpu_s']:.2f})" if r.get("cpu_s") is not None else ""
                    cells.append(f"{r['wall_s']:.2f}{cpu}")
                elif r.get("error", "").startswith("timeout"):
                    cpu = f", {r['cpu_s']:.0f} CPU s" if r.get("cpu_s") is not None else ""
                    cells.append(f"> {header['timeout']:g} (timeout{cpu})")
                else:
                    cells.append("failed" if not r.get("error", "").startswith("pending") else "pending")
            out.append(f"| {t} | " + " | ".join(cells) + " |")
        out.append("")
    for group in dict.fromkeys(r["group"] for r in rows):
        out += [f"## {group}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        for r in rows:
            if r["group"] == group:
                out.append("| " + " | ".join(row_cells(r)) + " |")
        out.append("")
    return "\n".join(out)


def print_rich(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*COLUMNS, title="onnxopt benchmark")
    for r in rows:
        table.add_row(*row_cells(r))
    Console().print(table)


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(DEFAULT_GROUPS), help=f"groups from {','.join(ALL_GROUPS)}")
    p.add_argument("--only", help="comma-separated model names to keep (e.g. synth-10k,magika_v3_3)")
    p.add_argument("--tools", default=",".join(ALL_TOOLS), help=f"from {','.join(ALL_TOOLS)}")
    p.add_argument("--timeout", type=float, default=600, help="seconds per tool run and per evaluation")
    p.add_argument("--repeat", type=int, default=1,
                   help="rounds of the whole-process timings per model, tools interleaved; the fastest "
                        "wall is kept (differences of 50 ms need more than one on a shared machine)")
    p.add_argument("--synth-sizes", default="1000,10000,50000,100000")
    p.add_argument("--external-gb", type=float, default=3.0)
    p.add_argument("--runs", type=int, default=20, help="latency runs per measurement (median; fewer if slow)")
    p.add_argument("--cache-dir", default=os.path.join(HERE, ".cache"))
    p.add_argument("--no-warmup", action="store_true", help="skip importing each tool once before measuring")
    p.add_argument("--keep-outputs", action="store_true", help="keep each tool's output under the cache dir")
    p.add_argument("--json", help="write the results as JSON here")
    p.add_argument("--md", help="write the markdown tables here")
    p.add_argument("--render", metavar="JSON[,JSON...]",
                   help="only render earlier --json files (to --md or stdout); several are merged per model")
    a = p.parse_args(argv)
    if a.render:
        text = markdown(*merge_runs(a.render.split(",")))
        if a.md:
            with open(a.md, "w") as f:
                f.write(text)
        else:
            print(text)
        return 0

    tools = [t for t in a.tools.split(",") if t]
    for t in tools:
        if t not in ALL_TOOLS:
            p.error(f"unknown tool {t!r}; choose from {','.join(ALL_TOOLS)}")
    models = find_models([g for g in a.models.split(",") if g], a.cache_dir,
                         [int(s) for s in a.synth_sizes.split(",") if s], a.external_gb)
    if a.only:
        keep = set(a.only.split(","))
        models = [m for m in models if m.name in keep]
    header = {"command": "python benchmarks/run.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
              "machine": machine_info(), "timeout": a.timeout, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
              "commit": _git_commit()}
    rows: list[dict] = []

    def flush() -> None:
        if a.json:
            with open(a.json, "w") as f:
                json.dump({**header, "rows": rows}, f, indent=1)
        if a.md:
            with open(a.md, "w") as f:
                f.write(markdown(rows, header))

    compile_tree(ROOT)  # onnxopt timed as installed, with its bytecode (see _bytecode.py)
    if not a.no_warmup:  # so the first model does not pay for a cold disk cache
        for tool in tools:
            cmd = tool_command(tool, "", "", False)
            if isinstance(cmd, list):
                pkg = {"floor": "onnxruntime", "ort-basic": "onnxruntime"}.get(tool, tool)
                if tool in ("onnxopt", "onnxopt+verify"):
                    cmd = [cmd[0], "--help"]
                else:
                    cmd = [sys.executable, "-c", f"import onnx, {pkg}"]
                subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=a.timeout,
                               check=False)
    for model in models:
        work = os.path.join(a.cache_dir, "runs", model.group, model.name)
        refdir = os.path.join(work, "ref")
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(refdir)
        log(f"[{model.name}] reference run")
        ref = evaluate("ref", model.path, refdir, model.spec, a.timeout, refdir, a.runs)
        have_ref = os.path.exists(os.path.join(refdir, "outputs.npz"))
        rows.append({"model": model.name, "group": model.group, "tool": "(original)", "ok": True,
                     "path": model.path, **ref})
        flush()
        timed_rows: dict = {}
        for tool in tools:
            outdir = os.path.join(work, tool)
            os.makedirs(outdir)
            out = os.path.join(outdir, "model.onnx")
            row = {"model": model.name, "group": model.group, "tool": tool}
            cmd = tool_command(tool, model.path, out, model.external)
            if isinstance(cmd, str):
                row.update(ok=False, error=cmd)
            else:
                r = run_timed(cmd, a.timeout, outdir)
                row.update(ok=r.ok, wall_s=r.wall_s, cpu_s=r.cpu_s, peak_rss_mb=r.peak_rss_mb, error=r.error,
                           load=r.load, wall_rounds=[r.wall_s])
                if r.ok:
                    timed_rows[tool] = (row, cmd, outdir)
                if r.ok and not os.path.exists(out):
                    row.update(ok=False, error="no output file")
                if row["ok"]:
                    if have_ref:
                        row.update(evaluate("eval", out, refdir, model.spec, a.timeout, outdir, a.runs))
                    else:
                        row.update(model_stats_only(out))
            log(f"[{model.name}] {tool}: " + ("ok" if row["ok"] else row["error"])
                + (f" {row['wall_s']:.2f} s" if "wall_s" in row else "")
                + (f", err {row['max_abs_err']}" if row.get("max_abs_err") is not None else "")
                + (f" ({row['eval_error']})" if row.get("eval_error") else ""))
            rows.append(row)
            flush()
            if not a.keep_outputs:
                _remove_outputs(outdir)
        for _ in range(a.repeat - 1):
            retime(timed_rows, a.timeout, a.keep_outputs)
            flush()
    flush()
    if sys.stdout.isatty():
        print_rich(rows)
    else:
        print(markdown(rows, header))
    return 0


def _remove_outputs(outdir: str) -> None:
    for f in os.listdir(outdir):
        if f.startswith("model.onnx"):
            os.remove(os.path.join(outdir, f))


def retime(timed_rows: dict, timeout: float, keep_outputs: bool) -> None:
    """One more round of the whole-process timings, the tools interleaved as in the first: each
    row keeps its fastest wall and CPU (the least disturbed by other work on the machine) and its
    largest memory; every round's wall stays in ``wall_rounds``."""
    for tool, (row, cmd, outdir) in timed_rows.items():
        r = run_timed(cmd, timeout, outdir)
        if not r.ok:
            continue
        row["wall_rounds"].append(r.wall_s)
        cpu = [c for c in (row["cpu_s"], r.cpu_s) if c is not None]
        row.update(wall_s=min(row["wall_s"], r.wall_s), cpu_s=min(cpu) if cpu else None,
                   peak_rss_mb=max(row["peak_rss_mb"], r.peak_rss_mb))
        if not keep_outputs:
            _remove_outputs(outdir)


def model_stats_only(path: str) -> dict:
    from _eval import model_stats

    return model_stats(path)


if __name__ == "__main__":
    sys.exit(main())
