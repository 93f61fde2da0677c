"""Passes: the protocol, the registry, pipelines, the manager, and the built-in passes.

The stable plugin API is: :class:`Pass`, :class:`GraphPass`, :class:`PassResult`,
:class:`PassContext`, :class:`Analysis`, :class:`Rewrite`, :func:`register`, :class:`PassManager`,
:func:`parse_pipeline`, and the pattern-rewrite API (:class:`Rule`, :class:`Op`, :class:`Var`,
:func:`Const`, :class:`Opt`, :class:`Or`, :class:`Match`, :class:`RewritePass`, :class:`Rewriter`,
:func:`apply_rules`, :func:`const_value`, :func:`const_tensor`). Built-in passes are imported on
demand by the registry.
"""

from .base import ALL, Analysis, GraphPass, Pass, PassContext, PassResult, Rewrite
from .manager import PassManager, PassRecord, PipelineReport
from .pipeline import format_pipeline, parse_pipeline
from .registry import all_entries, create, get, load_plugin_file, register
from .rewrite import (
    Const, Match, NotApplicable, Op, Opt, Or, RewritePass, Rewriter, Rule, Shapes, TraceEvent,
    Var, apply_rules, const_tensor, const_value,
)

__all__ = [
    "ALL", "Analysis", "GraphPass", "Pass", "PassContext", "PassResult", "Rewrite", "register",
    "PassManager", "PassRecord", "PipelineReport", "parse_pipeline", "format_pipeline",
    "all_entries", "create", "get", "load_plugin_file",
    "Rule", "Op", "Var", "Const", "Opt", "Or", "Match", "RewritePass", "Rewriter", "TraceEvent",
    "NotApplicable", "Shapes", "apply_rules", "const_tensor", "const_value",
]
