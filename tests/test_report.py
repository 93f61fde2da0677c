"""The HTML report (`--html`, `optimize(report=)`, `onnxopt view`, `onnxopt check --html`),
opened in headless Chromium: the drawn node colours match the IR diff, created nodes name their
pass and rule, search finds a node, no console error and no network request; bad report paths
are refused before any pass runs."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import onnxopt
import pytest
from onnxopt.cli.main import main
from onnxopt.errors import UsageError
from onnxopt.passes.pipeline import PassSpec
from onnxopt.report import browser
from onnxopt.testing import model_from_text

from _samples import erf_gelu

ROOT = Path(__file__).resolve().parent.parent
BERT = ROOT / "golden" / "models" / "bert_op17.onnx"
SILERO = ROOT / "tests" / "models" / "silero_vad_op15_ts.onnx"
ARTIFACTS = Path(os.environ.get("ONNXOPT_TEST_ARTIFACTS", ROOT / "build" / "test-artifacts"))

needs_chromium = pytest.mark.skipif(
    browser.chromium() is None,
    reason="no chromium on PATH (.ci/run installs Debian's chromium; apt-get install chromium)")

# Identity in front of an erf-GELU written out in seven ops, then a Relu that survives.
GELU = f"""<ir_version: 10, opset_import: ["" : 20]>
g (float[N,16] x) => (float[N,16] y) {{
   i = Identity (x)
{erf_gelu("i", "m")}
   y = Relu (m)
}}"""

# A Reshape whose target [3, 32] holds the traced batch size.
RESHAPE = """<ir_version: 8, opset_import: ["" : 17]>
g (float[3,4,8] x) => (float[3,32] y) {
   s = Constant <value = int64[2] {3, 32}> ()
   y = Reshape (x, s)
}"""


# The GELU of above inside the then-branch of an If; the else-branch negates.
BRANCHY = f"""<ir_version: 10, opset_import: ["" : 20]>
g (bool c, float[N,16] x) => (float[N,16] y) {{
   y = If (c) <
     then_branch = t () => (float[N,16] ty) {{
        i = Identity (x)
{erf_gelu("i", "m", indent=" " * 8)}
        ty = Relu (m)
     }},
     else_branch = f () => (float[N,16] fy) {{
        fy = Neg (x)
     }}
   >
}}"""


def graph_data(page: Path) -> dict:
    """The JSON block the page draws from."""
    text = page.read_text()
    m = re.search(r'<script type="application/json" id="graph-data">(.*?)</script>', text, re.DOTALL)
    return json.loads(m.group(1).replace("<\\/", "</"))


def data_counts(side: dict) -> dict:
    """Nodes per state the page draws at first: unchanged Constants are shown inside their
    users, and unchanged regions start folded unless the side is small and unchanged."""
    out: dict = {}
    for n in side["nodes"]:
        if n["op"] == "Constant" and n["s"] == "kept" or (n["g"] >= 0 and not side["open"]):
            continue
        out[n["s"]] = out.get(n["s"], 0) + 1
    return out


def drawn(result: dict, label: str) -> dict:
    pane = next(p for p in result["panes"] if p["label"] == label)
    return {k: v for k, v in pane["counts"].items() if v and k in ("kept", "removed", "created",
                                                                   "edited")}


def bodies(side: dict, path: str = ""):
    """(path, body) for every If/Loop/Scan body in the page data, nested ones too; the path is
    the page's own ("/3.0": body 0 of node 3)."""
    for i, n in enumerate(side["nodes"]):
        for k, b in enumerate(n.get("b", [])):
            yield f"{path}/{i}.{k}", b
            yield from bodies(b, f"{path}/{i}.{k}")


def drawn_body(body: dict) -> dict:
    return {k: v for k, v in body["counts"].items() if v and k in ("kept", "removed", "created",
                                                                   "edited")}


def assert_clean(result: dict) -> None:
    assert result["errors"] == [], result["errors"]
    assert result["resources"] == 0 and result["blocked"] == 0  # nothing fetched or attempted


# -- what the page says ---------------------------------------------------------------------------

def test_page_is_self_contained_and_links_new_nodes_to_their_rule(tmp_path: Path) -> None:
    page = tmp_path / "gelu.html"
    onnxopt.optimize(model_from_text(GELU), "identity,fuse,dce", report=page)
    text = page.read_text()
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", text)
    before, after = graph_data(page)["sides"]
    # 7 GELU ops (3 Constants) and the Identity go; one Gelu comes; the Relu reads it instead.
    assert data_counts(before) == {"removed": 9, "edited": 1}
    assert data_counts(after) == {"created": 1, "edited": 1}
    (gelu,) = [n for n in after["nodes"] if n["s"] == "created"]
    assert gelu["op"] == "Gelu"
    by = graph_data(page)["prov"][gelu["by"]]
    assert by["pass"] == "fuse" and by["rule"] == "fuse.gelu_erf"
    assert "erf" in by["reason"]
    assert by["replaced"][0][0] == "#1"
    assert sorted(by["replaced"][0][1:]) == ["Add(h)", "Div(s)", "Erf(e)", "Mul(a)", "Mul(m)"]
    assert "identity" in text and "Verification" in text  # the run's table and its check


def test_dynamize_lists_each_rewritten_constant(tmp_path: Path) -> None:
    page = tmp_path / "dyn.html"
    onnxopt.optimize(model_from_text(RESHAPE), [PassSpec("dynamize", {"dynamic": "x:0=batch"})],
                     report=page)
    text = re.sub(r"<[^>]+>", " ", page.read_text())
    section = text[text.index("Rewritten constants"):]
    assert re.search(r"Reshape\s+Reshape\s+1\s+int64\[2\] \{3, 32\}\s+int64\[2\] \{0, 32\}",
                     section)


def test_a_model_over_the_drawing_limit_gets_only_its_changed_regions(tmp_path, monkeypatch):
    from onnxopt import report
    from onnxopt.report import diff

    monkeypatch.setattr(report, "DRAW_LIMIT", 4)
    monkeypatch.setattr(diff, "DRAW_LIMIT", 4)
    page = tmp_path / "big.html"
    onnxopt.optimize(model_from_text(GELU), "identity,dce", report=page)
    assert "over the drawing limit of 4" in page.read_text()
    before, _ = graph_data(page)["sides"]
    assert before["limited"] and data_counts(before)["removed"] == 1
    assert all(g["members"] is None for g in before["groups"])  # counted, not embedded
    assert sum(g["size"] for g in before["groups"]) + len(before["nodes"]) == 10


def test_branch_nodes_are_diffed_and_linked_to_their_rule(tmp_path: Path) -> None:
    page = tmp_path / "branchy.html"
    onnxopt.optimize(model_from_text(BRANCHY), "identity,fuse,dce", report=page)
    data = graph_data(page)
    before, after = data["sides"]
    # The If itself stays (its then-branch is smaller); inside it, the GELU is fused as above.
    assert [(n["op"], n["s"]) for n in after["nodes"]] == [("If", "edited")]
    assert {path: (b["label"], data_counts(b)) for path, b in bodies(before)} == {
        "/0.0": ("then_branch", {"removed": 9, "edited": 1}),
        "/0.1": ("else_branch", {"kept": 1})}
    assert {path: (b["label"], data_counts(b)) for path, b in bodies(after)} == {
        "/0.0": ("then_branch", {"created": 1, "edited": 1}),
        "/0.1": ("else_branch", {"kept": 1})}
    (gelu,) = [n for _, b in bodies(after) for n in b["nodes"] if n["s"] == "created"]
    by = data["prov"][gelu["by"]]
    assert gelu["op"] == "Gelu" and by["pass"] == "fuse" and by["rule"] == "fuse.gelu_erf"
    assert sorted(by["replaced"][0][1:]) == ["Add(h)", "Div(s)", "Erf(e)", "Mul(a)", "Mul(m)"]


# -- bad input ------------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["missing-folder", "model", "output"])
def test_bad_report_path_is_refused_before_any_pass(tmp_path: Path, capsys, where: str) -> None:
    model = tmp_path / "m.onnx"
    shutil.copy(BERT, model)
    out = tmp_path / "m.opt.onnx"
    html = {"missing-folder": tmp_path / "nope" / "r.html", "model": model, "output": out}[where]
    code = main([str(model), "-o", str(out), "--html", str(html), "--no-verify"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("onnxopt: error: report ") and err.count("\n") == 1
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
    with pytest.raises(UsageError):
        onnxopt.optimize(str(model), "dce", report=str(html) if where != "output" else model)


def test_view_netron_without_netron_says_how_to_get_it(monkeypatch, capsys) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "netron", None)  # import fails as when not installed
    assert main(["view", "--netron", str(BERT)]) == 2
    assert "pip install 'onnxopt[view]'" in capsys.readouterr().err


# -- in the browser -------------------------------------------------------------------------------

@needs_chromium
def test_gelu_report_in_chromium(tmp_path: Path) -> None:
    page = tmp_path / "gelu.html"
    onnxopt.optimize(model_from_text(GELU), "identity,fuse,dce", report=page)
    got = browser.selftest(str(page), "gelu")
    assert_clean(got)
    assert drawn(got, "before") == {"removed": 9, "edited": 1}
    assert drawn(got, "after") == {"created": 1, "edited": 1}
    assert got["search"]["hits"] == 1 and got["search"]["highlighted"] == 1
    assert got["search"]["details"].startswith("Gelu")


@needs_chromium
def test_bert_report_in_chromium_and_its_screenshot(tmp_path: Path) -> None:
    page = tmp_path / "bert.html"
    onnxopt.optimize(str(BERT), "default", report=page)
    before, after = graph_data(page)["sides"]
    got = browser.selftest(str(page), "LayerNorm")
    assert_clean(got)
    assert drawn(got, "before") == data_counts(before)
    assert drawn(got, "after") == data_counts(after)
    assert drawn(got, "after").get("created", 0) > 0 and drawn(got, "before")["removed"] > 0
    assert got["search"]["hits"] > 0 and got["search"]["highlighted"] == 1
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.screenshot(str(page), str(ARTIFACTS / "bert_report.png"), search="LayerNorm")
    assert (ARTIFACTS / "bert_report.png").stat().st_size > 10_000


@needs_chromium
def test_view_diff_of_two_files_in_chromium(tmp_path: Path, capsys) -> None:
    opt = tmp_path / "silero.opt.onnx"
    onnxopt.save(onnxopt.optimize(str(SILERO), "default", verify=False).model, str(opt))
    page = tmp_path / "view.html"
    assert main(["view", str(SILERO), "--diff", str(opt), "-o", str(page), "--no-open"]) == 0
    assert capsys.readouterr().out.strip() == str(page)
    before, after = graph_data(page)["sides"]
    query = "rnn_1/Gather_1"  # a node of a branch nested two deep, in no main graph
    assert not any(query in n["name"] for side in (before, after) for n in side["nodes"])
    got = browser.selftest(str(page), query, bodies=True)
    assert_clean(got)
    assert drawn(got, "before") == data_counts(before) and data_counts(before)["removed"] > 0
    assert drawn(got, "after") == data_counts(after) and data_counts(after)["created"] > 0
    # The search opened the branches around it: the outer If's and the inner If's, two each.
    assert got["search"]["hits"] == 1 and got["search"]["highlighted"] == 1
    assert got["search"]["details"].endswith(query) and got["search"]["bodies"] == 4
    # Every body of every If is drawn, coloured as the diff (229 nodes in bodies before).
    expected = {(s["label"], path): data_counts(b) for s in (before, after)
                for path, b in bodies(s)}
    assert {(b["label"], b["path"]): drawn_body(b) for b in got["bodies"]} == expected
    assert sum(b["total"] for _, b in bodies(before)) == 229
    assert any(c.get("removed") and c.get("edited") for c in expected.values())


@needs_chromium
def test_check_tensorrt_html_puts_findings_on_the_graph(tmp_path: Path, monkeypatch) -> None:
    from onnxopt.report import diff

    monkeypatch.setattr(diff, "OPEN_ALL", 0)  # everything folded but the flagged nodes
    page = tmp_path / "check.html"
    assert main(["check", "--target", "tensorrt", str(SILERO), "--html", str(page)]) == 1
    (side,) = graph_data(page)["sides"]
    flagged = [n for n in side["nodes"] if n.get("f")]
    assert flagged and all(isinstance(x, str) for n in flagged for x in n["f"])
    in_bodies = [n for _, b in bodies(side) for n in b["nodes"] if n.get("f")]
    assert in_bodies  # silero's nested Ifs with branches of different ranks
    got = browser.selftest(str(page), bodies=True)
    assert_clean(got)
    assert got["panes"][0]["counts"]["flag"] == len(flagged)
    assert sum(b["counts"]["flag"] for b in got["bodies"]) == len(in_bodies)


@needs_chromium
def test_hostile_names_stay_text(tmp_path: Path) -> None:
    """A node name that closes the script element is data, not markup."""
    model = model_from_text(GELU)
    evil = '</script><script>document.title="pwned"</script><!--'
    for n in model.graph.nodes:
        n.name = evil
    page = tmp_path / "evil.html"
    onnxopt.optimize(model, "identity", report=page, verify=False)
    got = browser.selftest(str(page), "pwned")
    assert_clean(got)
    assert got["search"]["details"] == f"Identity  {evil}"


# Identity, then eight unchanged ops in a row: the chain is folded in the diff until clicked.
CHAIN = """<ir_version: 8, opset_import: ["" : 17]>
g (float[2] x) => (float[2] y) {
   i = Identity (x)
   a = Relu (i)
   b = Neg (a)
   c = Abs (b)
   d = Neg (c)
   e = Abs (d)
   f = Neg (e)
   h = Abs (f)
   y = Neg (h)
}"""


@needs_chromium
def test_unchanged_regions_start_folded_and_unfold_on_click(tmp_path: Path) -> None:
    page = tmp_path / "chain.html"
    onnxopt.optimize(model_from_text(CHAIN), "identity", report=page, verify=False)
    _, after = graph_data(page)["sides"]
    # The Relu reads x now (edited) and the Neg after it is its context: six nodes fold.
    assert [g["size"] for g in after["groups"]] == [6]
    got = browser.selftest(str(page), expand=True)
    assert_clean(got)
    assert drawn(got, "after") == {"edited": 1, "kept": 1}
    assert got["panes"][1]["counts"]["group"] == 1
    # one box out, six nodes in
    assert got["expanded"][1]["after"] - got["expanded"][1]["before"] == 5


@needs_chromium
def test_branches_expand_and_search_opens_them_in_chromium(tmp_path: Path) -> None:
    page = tmp_path / "branchy.html"
    onnxopt.optimize(model_from_text(BRANCHY), "identity,fuse,dce", report=page)
    got = browser.selftest(str(page), "gelu", bodies=True)
    assert_clean(got)
    # Bodies start collapsed: each side draws only the If (and its [+]).
    assert drawn(got, "before") == {"edited": 1} and drawn(got, "after") == {"edited": 1}
    assert [p["counts"]["cf"] for p in got["panes"]] == [1, 1]
    # The Gelu is in the after side's then-branch: the search opened both branches of its If.
    assert got["search"] == {"query": "gelu", "hits": 1, "highlighted": 1, "details": "Gelu",
                             "bodies": 2}
    assert {(b["label"], b["path"]): drawn_body(b) for b in got["bodies"]} == {
        ("before", "/0.0"): {"removed": 9, "edited": 1}, ("before", "/0.1"): {"kept": 1},
        ("after", "/0.0"): {"created": 1, "edited": 1}, ("after", "/0.1"): {"kept": 1}}
    # x comes from the enclosing graph: each branch draws it as an input box.
    assert all(b["counts"]["io"] == 2 for b in got["bodies"])
