"""Every subcommand spells, defaults and explains a shared option the same way.

The options are declared once (``onnxopt.cli.inputs.add_input_args``/``add_output_args``); these
tests hold each command's parser to that, so a command that grows its own ``--seed`` again fails.
"""

from __future__ import annotations

import numpy as np
import pytest

from onnxopt.cli import check, cut, show, view
from onnxopt.cli import verify as cli_verify
from onnxopt.cli.inputs import parse_input_shapes, verify_options
from onnxopt.cli.main import _optimize_parser

# Each command taking inputs, with the positionals it needs to parse.
TAKING_INPUTS = {
    "optimize": (_optimize_parser, ["m.onnx"]),
    "verify": (cli_verify._parser, ["a.onnx", "b.onnx"]),
    "cut": (cut._parser, ["m.onnx"]),
}
# The commands that compare against the original with generated or given inputs.
VERIFYING = ("optimize", "verify")
EVERY_PARSER = {**{k: f for k, (f, _) in TAKING_INPUTS.items()},
                "check": check._parser, "view": view._parser, "show": show._parser}


def parse(command: str, extra: list[str]):
    make, positionals = TAKING_INPUTS[command]
    return make().parse_args(positionals + extra)


def declared(make) -> dict:
    """option string -> what a user sees and gets: spellings, default, metavar, help, type."""
    out = {}
    for a in make()._actions:
        for s in a.option_strings:
            out[s] = (tuple(a.option_strings), a.default, a.metavar, a.help, a.type, a.nargs)
    return out


@pytest.mark.parametrize("command", TAKING_INPUTS)
def test_input_shape_and_seed_parse_alike_in_every_command(command):
    args = parse(command, ["--input-shape", "x:1,3", "--input-shape", "ids:batch,128",
                           "--seed", "7"])
    assert parse_input_shapes(args.input_shape) == {"x": [1, 3], "ids": ["batch", 128]}
    assert args.seed == 7


@pytest.mark.parametrize("command", TAKING_INPUTS)
def test_input_shape_and_seed_default_alike_in_every_command(command):
    args = parse(command, [])
    assert args.input_shape == [] and args.seed == 0


@pytest.mark.parametrize("command", VERIFYING)
def test_verification_options_mean_the_same_in_optimize_and_verify(command, tmp_path):
    feeds = tmp_path / "x.npz"
    np.savez(feeds, x=np.ones((1, 3), np.float32))
    args = parse(command, ["--inputs", str(feeds), "--input-range", "x:-1:2", "--seed", "3",
                           "--atol", "1e-3", "--rtol", "0.5", "--input-shape", "x:1,3"])
    vopts = verify_options(args, input_shapes=True)
    assert (vopts.seed, vopts.input_ranges, vopts.atol_override, vopts.rtol_override) == (
        3, {"x": (-1.0, 2.0)}, 1e-3, 0.5)
    assert vopts.input_shapes == {"x": [1, 3]}
    assert [sorted(f) for f in vopts.feeds] == [["x"]]


def test_verification_options_absent_are_the_defaults_in_optimize_and_verify():
    a, b = (verify_options(parse(c, []), input_shapes=True) for c in VERIFYING)
    assert a == b
    assert a.feeds is None and a.atol_override is None and a.input_ranges == {}


def test_cut_takes_no_verification_inputs_its_inputs_name_tensors():
    # cut's --inputs is "A,B | NPZ" (tensor names for --extract, feeds for --run); its check is
    # bit for bit, so it has no tolerances or ranges.
    options = declared(cut._parser)
    assert "--atol" not in options and "--input-range" not in options
    assert options["--inputs"][2] == "A,B | NPZ"


def test_a_shared_option_is_declared_identically_everywhere():
    tables = {name: declared(make) for name, make in EVERY_PARSER.items()}
    shared = {"--input-shape", "--seed", "--inputs", "--input-range", "--atol", "--rtol", "-q",
              "--debug"}
    for option in shared:
        having = {name: t[option] for name, t in tables.items() if option in t
                  and not (name == "cut" and option == "--inputs")}
        first = next(iter(having.values()))
        assert all(v == first for v in having.values()), (option, having)
    for name, t in tables.items():
        assert t["--debug"][3] == "show tracebacks", name


def test_json_says_what_it_prints_in_one_form():
    for name, make in EVERY_PARSER.items():
        opt = declared(make).get("--json")
        if opt is not None:
            assert opt[3].startswith("print the ") and opt[3].endswith(" as JSON"), name


def test_quiet_and_verbose_exclude_each_other_in_optimize():
    with pytest.raises(SystemExit) as e:
        parse("optimize", ["-q", "-v"])
    assert e.value.code == 2
    assert parse("optimize", ["-vv"]).verbose == 2
    assert parse("cut", ["-q"]).quiet is True


@pytest.mark.parametrize("command", [[], ["verify"], ["check"], ["view", "--no-open"],
                                     ["show"], ["cut", "--stages", "2", "-o", "out"]])
def test_every_command_refuses_a_missing_model_or_a_folder_in_the_same_words(
        command, tmp_path, capsys):
    from onnxopt.cli.main import main

    for path, words in ((tmp_path / "none.onnx", "no such file"),
                        (tmp_path, "is a directory, not a model file")):
        models = [str(path)] * (2 if command == ["verify"] else 1)
        assert main(command + models) == 2
        assert capsys.readouterr().err == f"onnxopt: error: {path}: {words}\n"


@pytest.mark.parametrize("command", [["{model}"], ["cut", "--run", "{pipeline}",
                                                  "--inputs", "{feeds}"]])
def test_an_output_in_a_missing_folder_is_refused_first_in_the_same_words(
        command, tmp_path, capsys):
    # cut --run -o once wrote after running and failed with an internal error (exit 3).
    from onnxopt.cli.main import main
    from onnxopt.testing import model_file

    model = model_file("<ir_version: 8, opset_import: [\"\" : 17]> g (float[2] x) => "
                       "(float[2] y) { y = Relu (x) }", tmp_path / "m.onnx")
    np.savez(tmp_path / "x.npz", x=np.ones(2, np.float32))
    names = {"model": model, "pipeline": tmp_path / "no-pipeline-here",
             "feeds": tmp_path / "x.npz"}
    out = tmp_path / "missing" / ("o.onnx" if command[0] != "cut" else "o.npz")
    assert main([a.format(**names) for a in command] + ["-o", str(out)]) == 2
    assert capsys.readouterr().err == f"onnxopt: error: {out}: the output folder does not exist\n"
