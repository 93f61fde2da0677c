"""Pattern rewriting: declarative patterns, checks that say why they refuse, rewrites via Builder.

A :class:`Rule` (``rule.py``) has three parts:

- ``pattern``: what to look for, rooted at the op whose outputs get replaced. Built from
  (``patterns.py``) :class:`Op` (op type(s) and domain, ``commutative`` to try both orders of the
  first two inputs, attribute and dtype constraints, ``rank`` answered by shape inference,
  ``private`` = "this intermediate value has no user outside the match", the default for every
  non-root op), :class:`Var` (any value; the same name twice means the same value),
  :class:`Const` (a value that must be a constant: an initializer that is not a graph input, or
  a ``Constant`` node's output), :class:`Opt` (an optional input: absent, or matching its
  pattern) and :class:`Or` (alternatives). A plain string is a ``Var``. A rule may list several
  patterns.
- ``check(m)``: every precondition the pattern cannot say; returns a reason string to refuse
  (shown by the tracer with ``-v``), None to accept. It must not change the IR.
- ``rewrite(m, b)``: builds the replacement with ``b`` (an :class:`onnxopt.ir.Builder` inserting
  before the root) and returns the values replacing the root's outputs. It never edits matched
  nodes.

The matcher (``match.py``) matches one pattern at one root and returns a :class:`Match`
(bindings, matched nodes, shape helpers). The driver (``driver.py``, :class:`Rewriter`) runs rules
over every graph with a worklist indexed by root op: each node is examined when it is new or when
something around it changed, never by rescanning the graph. On success it replaces the root's
outputs (graph outputs included, names kept), erases the matched nodes that became dead and
whatever only they read, tags new nodes with the rule name, records a
:class:`~onnxopt.passes.Rewrite`, and pushes the neighbourhood back on the worklist.
``max_rewrites`` stops after N rewrites (bisection finds the first bad one with it). A rule whose
``opset`` (the minimum opset of the ops it creates) is newer than the graph's does not run. Later
rounds, and a later run of the same :class:`RewritePass` (a fixed-point iteration), examine only
nodes within the rules' pattern depth downstream of what changed since (the IR's mutation clock).
Shape questions go to :class:`Shapes` (``facts.py``), which reads the shape analysis' facts
(``value.meta``); asking changes nothing. Near-misses go to the tracer (``trace.py``).

:class:`RewritePass` (``rule_pass.py``) turns a list of rules into a pass with ``only``,
``disable`` and ``max_rewrites`` options; built-in fusions (``fuse``) and plugins use it the same
way.
"""

from .constants import attr_of, const_tensor, const_value, has_ref_attrs, schema_default
from .driver import Rewriter, apply_rules
from .facts import Shapes
from .match import Match, match
from .patterns import Const, Op, Opt, Or, Pattern, Var
from .rule import NotApplicable, Rule
from .rule_pass import RewritePass
from .trace import TraceEvent, Tracer, VerboseTracer, verbose_tracer

__all__ = [
    "Pattern", "Var", "Const", "Opt", "Or", "Op", "Rule", "Match", "Shapes", "Rewriter",
    "RewritePass", "TraceEvent", "Tracer", "NotApplicable", "VerboseTracer", "apply_rules",
    "const_tensor", "const_value", "attr_of", "has_ref_attrs", "schema_default", "verbose_tracer", "match",
]
