"""Activation fusions: Gelu (erf and tanh forms, opset 20), HardSigmoid (6), HardSwish (14; below
it x * HardSigmoid(x)), Mish (18), each from the decompositions exporters write.

Constants are recognised up to their storage precision (``sqrt(2)`` stored as float32 is
1.4142135); every constant must be a single element that cannot broadcast the input's shape.
"""

from __future__ import annotations

import math
from typing import Optional

from ..rewrite import Const, Match, NotApplicable, Op, Opt, Or, Rule
from ._common import FLOATS, is_close, scalar, scalar_fits

_SQRT2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _half_x_times(h: Op) -> list[Op]:
    """The orderings of 0.5 * x * h: (x*0.5)*h, (x*h)*0.5, x*(h*0.5), (x*h)/2."""
    return [
        Op("Mul", Op("Mul", "x", Const("half"), commutative=True, name="xh"), h,
           commutative=True, name="out"),
        Op("Mul", Op("Mul", "x", h, commutative=True, name="xh"), Const("half"),
           commutative=True, name="out"),
        Op("Mul", "x", Op("Mul", h, Const("half"), commutative=True, name="hh"),
           commutative=True, name="out"),
        Op("Div", Op("Mul", "x", h, commutative=True, name="xh"), Const("two"), name="out"),
    ]


class _Activation(Rule):
    """Checks shared by activation rules: float input, named constants close to their targets."""

    targets: dict[str, float] = {}
    consts = ("a", "b", "lo", "hi", "s", "d")

    no_double = False  # onnxruntime's CPU provider has no double kernel for the fused op

    def check(self, m: Match) -> Optional[str]:
        names = tuple(self.targets) + self.consts
        dt = m.dtype("x") or next((m.dtype(k) for k in names if m.get(k) is not None), None)
        if dt not in FLOATS:
            return "input is not a float tensor"
        if self.no_double and dt == 11:
            return "onnxruntime has no double kernel for the fused op"
        for name, want in self.targets.items():
            if m.get(name) is None:
                continue
            c = m.const(name)
            if not scalar_fits(m, c, "x"):
                return f"constant {name} is not a scalar that keeps the input's shape"
            if not is_close(c, want, dt):
                return f"constant {name} is {scalar(c)}, not {want:.7g}"
        return self.extra_check(m)

    def extra_check(self, m: Match) -> Optional[str]:
        return None


_ERF_H = Op("Add", Op("Erf", Or(Op("Div", "x", Const("sqrt2"), name="scaled"),
                                Op("Mul", "x", Const("inv_sqrt2"), commutative=True,
                                   name="scaled")), name="erf"),
            Const("one"), commutative=True, name="h")


class GeluErf(_Activation):
    """0.5 * x * (1 + erf(x / sqrt(2))) (or x * 0.70710678) in its usual orderings -> Gelu."""

    name = "gelu_erf"
    summary = "Gelu from 0.5*x*(1+erf(x/sqrt(2)))"
    opset = 20
    benefit = 8
    pattern = _half_x_times(_ERF_H)
    targets = {"half": 0.5, "two": 2.0, "one": 1.0, "sqrt2": _SQRT2, "inv_sqrt2": 1 / _SQRT2}

    def rewrite(self, m: Match, b):
        return b.op("Gelu", [m["x"]])


_CUBE = Or(Op("Pow", "x", Const("three"), name="cube"),
           Op("Mul", "x", Op("Mul", "x", "x", name="sq"), commutative=True, name="cube"))
_TANH_H = Op("Add", Op("Tanh", Op("Mul", Op("Add", "x", Op("Mul", _CUBE, Const("k3"),
                                                            commutative=True, name="k3x3"),
                                            commutative=True, name="poly"),
                                  Const("k"), commutative=True, name="arg"), name="tanh"),
             Const("one"), commutative=True, name="h")


class GeluTanh(_Activation):
    """0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3))) -> Gelu(approximate="tanh");
    x^3 as Pow(x, 3) or x * (x * x)."""

    name = "gelu_tanh"
    summary = "Gelu(approximate=tanh) from 0.5*x*(1+tanh(sqrt(2/pi)*(x+0.044715*x^3)))"
    opset = 20
    benefit = 8
    pattern = _half_x_times(_TANH_H)
    targets = {"half": 0.5, "two": 2.0, "one": 1.0, "three": 3.0, "k3": 0.044715,
               "k": _SQRT_2_OVER_PI}

    def rewrite(self, m: Match, b):
        return b.op("Gelu", [m["x"]], {"approximate": "tanh"})


def _clip_bounds(m: Match) -> tuple[Optional[float], Optional[float]]:
    """Clip's min and max (attributes before opset 11, constant inputs after)."""
    clip = m.node("clip")
    if "min" in clip.attributes or "max" in clip.attributes or m.opset < 11:
        return float(clip.attr("min", -3.4028234663852886e38)), \
               float(clip.attr("max", 3.4028234663852886e38))
    lo = -math.inf if m.get("lo") is None else scalar(m.const("lo"))
    hi = math.inf if m.get("hi") is None else scalar(m.const("hi"))
    return lo, hi


# clip(a*x + b, lo, hi), with a*x optional
_AFFINE = Op("Add", Or(Op("Mul", "x", Const("a"), commutative=True, name="ax"), "x"),
             Const("b"), commutative=True, name="lin")
_CLIP = Op("Clip", _AFFINE, Opt(Const("lo")), Opt(Const("hi")), name="clip")


def _hard_params(m: Match, post: float) -> Optional[tuple[float, float]]:
    """(alpha, beta) when post * clip(a*x + b, lo, hi) == HardSigmoid(x; alpha, beta)."""
    lo, hi = _clip_bounds(m)
    a = 1.0 if m.get("a") is None else scalar(m.const("a"))
    b = scalar(m.const("b"))
    if None in (lo, hi, a, b) or post <= 0 or lo != 0.0 or not math.isclose(hi * post, 1.0,
                                                                              rel_tol=1e-6):
        return None
    return a * post, b * post


def _post(m: Match) -> Optional[float]:
    """The positive factor applied after the clip (1, s, or 1/d)."""
    if m.get("s") is not None:
        return scalar(m.const("s"))
    if m.get("d") is not None:
        d = scalar(m.const("d"))
        return None if not d else 1.0 / d
    return 1.0


def _times_input(m: Match) -> bool:
    """Whether the matched clip's result is multiplied by x (the hard-swish shape)."""
    return any(c.op_type == "Mul" and m["x"] in c.inputs for c in m.root.outputs[0].consumers())


class HardSigmoid(_Activation):
    """clip(a*x + b, 0, 1), clip(x + 3, 0, 6) / 6 and clip(x + 3, 0, 6) * (1/6) ->
    HardSigmoid(alpha, beta); all constants scalars."""

    name = "hard_sigmoid"
    summary = "HardSigmoid from Clip(a*x+b, 0, 1) or Clip(x+3, 0, 6)/6"
    opset = 6
    no_double = True
    benefit = 5
    pattern = [Op("Div", _CLIP, Const("d"), name="out"),
               Op("Mul", _CLIP, Const("s"), commutative=True, name="out"), _CLIP]
    targets = {}

    def extra_check(self, m: Match) -> Optional[str]:
        for k in ("a", "b", "lo", "hi", "s", "d"):
            if m.get(k) is not None and not scalar_fits(m, m.const(k), "x"):
                return f"constant {k} is not a scalar that keeps the input's shape"
        post = _post(m)
        if post is None or _hard_params(m, post) is None:
            return "not a clip to [0, 1] of an affine function"
        if m.opset < 14 and _times_input(m):
            # x * HardSigmoid(x) runs 1.5-2x slower in OpenVINO than the clip form (HardSwish)
            return NotApplicable("x times this clip is a hard swish, kept below opset 14")
        return None

    def rewrite(self, m: Match, b):
        alpha, beta = _hard_params(m, _post(m))
        return b.op("HardSigmoid", [m["x"]], {"alpha": float(alpha), "beta": float(beta)})


class HardSwish(_Activation):
    # long: four root patterns (HardSigmoid and three orderings of the clip form), and the docstring
    #   says why below opset 14 the clip form stays
    """x * HardSigmoid(x; 1/6, 0.5), x * clip(x + 3, 0, 6) / 6 and its orderings -> HardSwish
    (opset 14). Below opset 14 the clip form stays: x * HardSigmoid(x) is faster in onnxruntime
    but OpenVINO's CPU plugin runs HardSigmoid as a reference kernel outside its conv post-ops,
    1.5-2x slower there, while it fuses the clip form and HardSwish into the Conv
    (benchmarks/RESULTS.md, issue 21)."""

    name = "hard_swish"
    summary = "HardSwish from x*HardSigmoid(x) or x*Clip(x+3, 0, 6)/6"
    opset = 14
    no_double = True
    benefit = 6
    pattern = [Op("Mul", "x", Op("HardSigmoid", "x", name="hs"), commutative=True, name="out"),
               Op("Div", Op("Mul", "x", _CLIP, commutative=True, name="xc"), Const("d"),
                  name="out"),
               Op("Mul", Op("Mul", "x", _CLIP, commutative=True, name="xc"), Const("s"),
                  commutative=True, name="out"),
               Op("Mul", "x", Op("Div", _CLIP, Const("d"), name="cd"), commutative=True,
                  name="out")]
    targets = {}

    def extra_check(self, m: Match) -> Optional[str]:
        if m.get("hs") is not None:
            hs = m.node("hs")
            alpha, beta = m.attr(hs, "alpha"), m.attr(hs, "beta")
        else:
            for k in ("a", "b", "lo", "hi", "s", "d"):
                if m.get(k) is not None and not scalar_fits(m, m.const(k), "x"):
                    return f"constant {k} is not a scalar that keeps the input's shape"
            post = _post(m)
            params = None if post is None else _hard_params(m, post)
            if params is None:
                return "not x times a clip to [0, 1] of an affine function"
            alpha, beta = params
        if not (math.isclose(alpha, 1 / 6, rel_tol=1e-6) and math.isclose(beta, 0.5,
                                                                           rel_tol=1e-6)):
            return f"HardSigmoid has alpha={alpha:.7g}, beta={beta:.7g}, not 1/6 and 0.5"
        return None

    def rewrite(self, m: Match, b):
        return b.op("HardSwish", [m["x"]])


class Mish(_Activation):
    """x * tanh(softplus(x)), softplus as Softplus or log(1 + exp(x)) -> Mish."""

    name = "mish"
    summary = "Mish from x*tanh(softplus(x))"
    opset = 18
    benefit = 6
    pattern = Op("Mul", "x", Op("Tanh", Or(
        Op("Softplus", "x", name="sp"),
        Op("Log", Op("Add", Op("Exp", "x", name="e"), Const("one"), commutative=True,
                     name="e1"), name="sp")), name="t"), commutative=True, name="out")
    targets = {"one": 1.0}

    def rewrite(self, m: Match, b):
        return b.op("Mish", [m["x"]])


RULES = [GeluErf(), GeluTanh(), HardSigmoid(), HardSwish(), Mish()]

__all__ = ["RULES", "GeluErf", "GeluTanh", "HardSigmoid", "HardSwish", "Mish"]
