"""The pass protocol: a pass has a CLI name, a one-line summary, and ``run(model, ctx)``.

Most passes are written per graph: subclass :class:`GraphPass` and implement ``run_on_graph``;
the base class applies it to the main graph, every subgraph and every function body. A pass
returns a :class:`PassResult` saying whether it changed the IR (``modified=False`` means the IR is
byte-for-byte the same; the manager can check that), its statistics counters, the rewrites it made
(rule name and the nodes it replaced, for bisection), and the analyses it kept valid.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable, Optional

from ..ir.errors import UsageError
from ..ir import Graph, Model


ALL = frozenset({"*"})


@dataclass
class Rewrite:
    """One rewrite a pass made: the rule's name and the nodes it replaced (names or op types)."""

    rule: str
    replaced: tuple[str, ...] = ()


@dataclass
class PassResult:
    """What a pass did. ``preserved``: analysis names still valid (``ALL`` for every one)."""

    modified: bool = False
    stats: Counter = field(default_factory=Counter)
    rewrites: list[Rewrite] = field(default_factory=list)
    preserved: frozenset = frozenset()

    def merge(self, other: "PassResult") -> None:
        """Fold another result (of one graph) into this one."""
        self.modified |= other.modified
        self.stats.update(other.stats)
        self.rewrites.extend(other.rewrites)


class Analysis:
    """A cached computation over the model that passes request through the context.

    An analysis never changes the IR; it may record facts beside it (``value.meta``).

    After a pass that modified the IR, a cached result is either *preserved* (the pass named the
    analysis in ``PassResult.preserved``: its facts stay true, though new nodes may lack them) or
    dropped. A preserved result is brought up to date by :meth:`update` on the next request (by
    default it is returned as it is); a dropped one is recomputed, and :meth:`discard` is called
    first so the analysis can forget facts it recorded on the model.
    """

    name: ClassVar[str] = ""

    def compute(self, model: Model, ctx: "PassContext") -> Any:  # pragma: no cover - protocol
        raise NotImplementedError

    def update(self, model: Model, ctx: "PassContext", previous: Any) -> Any:
        """The result after passes that preserved this analysis (default: ``previous``)."""
        return previous

    @classmethod
    def discard(cls, model: Model) -> None:
        """Forget facts recorded on ``model`` (a pass that did not preserve the analysis ran)."""


MEMO_OPTION = "rewrite.memo"  # see PassContext.incremental


class PassContext:
    """What a running pass can reach: the model, cached analyses, options, and a logger."""

    def __init__(self, model: Model, verbose: int = 0, options: Optional[dict] = None):
        self.model = model
        self.verbose = verbose
        self.options: dict[str, Any] = dict(options or {})
        self._analyses: dict[str, Any] = {}
        self._stale: set[str] = set()  # preserved across a modification: update() on request
        self._at_pass_end: list[Callable[[], Any]] = []
        self.notes: list[str] = []  # messages for the user (verbose output, reports)

    def analysis(self, kind: type[Analysis]) -> Any:
        """The result of an analysis: computed once, brought up to date after passes that
        preserved it, recomputed after one that did not."""
        key = kind.name
        if key not in self._analyses:
            _record_kind(self.model, kind)
            self._analyses[key] = kind().compute(self.model, self)
            self._stale.discard(key)
        elif key in self._stale:
            self._stale.discard(key)
            self._analyses[key] = kind().update(self.model, self, self._analyses[key])
        return self._analyses[key]

    def at_pass_end(self, fn: Callable[[], Any]) -> None:
        """Call ``fn`` when the running pass ends (the pass manager calls :meth:`end_pass`)."""
        self._at_pass_end.append(fn)

    def end_pass(self) -> None:
        """Run what the pass that just ended asked for, last registered first."""
        fns, self._at_pass_end = self._at_pass_end, []
        for fn in reversed(fns):
            fn()

    def has_analysis(self, name: str) -> bool:
        """True when a result of the analysis ``name`` is cached (perhaps due an update)."""
        return name in self._analyses

    def set_analysis(self, kind: type[Analysis], result: Any) -> None:
        """Cache ``result`` as the up-to-date result of ``kind`` (a pass that computed it)."""
        _record_kind(self.model, kind)
        self._analyses[kind.name] = result
        self._stale.discard(kind.name)

    def invalidate(self, preserved: frozenset) -> None:
        """After a pass modified the IR: analyses named in ``preserved`` are updated on their
        next request, the others are dropped (and forget the facts they recorded)."""
        if "*" in preserved:
            return
        for k in list(self._analyses):
            if k in preserved:
                self._stale.add(k)
            else:
                del self._analyses[k]
                self._stale.discard(k)
        kinds = self.model.meta.get(_KINDS)
        if kinds:
            for k in [k for k in kinds if k not in preserved]:
                kinds.pop(k).discard(self.model)

    @property
    def incremental(self) -> bool:
        """Whether passes may start from what they remembered of their last clean run (the
        rewrite driver, fold, cse, dce). The option ``rewrite.memo=False`` turns that off for
        every pass at once: tests compare incremental runs with full sweeps that way."""
        return bool(self.options.get(MEMO_OPTION, True))

    def note(self, message: str) -> None:
        """Record a message for the user (shown with -v, collected in reports)."""
        self.notes.append(message)
        import logging  # here: the module costs every run a few ms, and few runs take notes

        logging.getLogger("onnxopt").info(message)


_KINDS = "analyses"  # model.meta: name -> Analysis class of analyses that ran on the model


def _record_kind(model: Model, kind: type[Analysis]) -> None:
    model.meta.setdefault(_KINDS, {})[kind.name] = kind


class Pass:
    """Base of every pass. Subclasses set ``name`` and ``summary`` and implement ``run``.

    ``options`` maps each accepted option to its default; a pipeline's ``name{opt=value}`` sets
    them, an unknown option is a usage error.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    options: ClassVar[dict[str, Any]] = {}

    def __init__(self, **opts: Any):
        unknown = set(opts) - set(self.options)
        if unknown:
            raise UsageError(f"pass {self.name!r} has no option {sorted(unknown)[0]!r} "
                             f"(options: {', '.join(sorted(self.options)) or 'none'})")
        self.opts = {**self.options, **opts}

    def run(self, model: Model, ctx: PassContext) -> PassResult:  # pragma: no cover - protocol
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<pass {self.name}>"


class GraphPass(Pass):
    """A pass written for one graph, applied to every graph of the model (subgraphs included).

    Subgraphs are visited before the graph that holds them, so a rewrite in an outer graph sees
    its bodies already processed.
    """

    def run(self, model: Model, ctx: PassContext) -> PassResult:
        """Run on every graph; analyses are preserved when every graph that changed kept them."""
        result = PassResult()
        preserved = ALL
        for g in _post_order(model):
            r = self.run_on_graph(g, ctx)
            result.merge(r)
            if r.modified:
                preserved = _meet(preserved, r.preserved)
        result.preserved = ALL if not result.modified else preserved
        return result

    def run_on_graph(self, graph: Graph, ctx: PassContext) -> PassResult:  # pragma: no cover
        raise NotImplementedError


def _meet(a: frozenset, b: frozenset) -> frozenset:
    """Analyses preserved by both (``ALL`` is every one)."""
    if "*" in a:
        return b
    if "*" in b:
        return a
    return a & b


def _post_order(model: Model) -> list[Graph]:
    out: list[Graph] = []

    def visit(g: Graph) -> None:
        if next(g.subgraphs(), None) is not None:  # a cached walk: most graphs nest nothing
            for n in list(g.nodes):
                for sub in n.subgraphs():
                    visit(sub)
        out.append(g)

    for f in model.functions.values():
        visit(f.graph)
    visit(model.graph)
    return out


class FunctionPass(Pass):
    """A pass given as a plain function ``fn(model, ctx) -> PassResult | bool``."""

    fn: ClassVar[Callable] = staticmethod(lambda model, ctx: PassResult())

    def run(self, model: Model, ctx: PassContext) -> PassResult:
        out = type(self).fn(model, ctx)
        if isinstance(out, PassResult):
            return out
        return PassResult(modified=bool(out), preserved=frozenset() if out else ALL)


def count_ops(model: Model) -> Counter:
    """Op-type counts over the main graph and its subgraphs."""
    c: Counter = Counter()
    for n in model.graph.all_nodes():
        c[f"{n.domain}.{n.op_type}" if n.domain else n.op_type] += 1
    return c


def iter_graphs(model: Model) -> Iterable[Graph]:
    """Every graph of the model, subgraphs before their parents."""
    return _post_order(model)


__all__ = ["Pass", "GraphPass", "FunctionPass", "PassResult", "PassContext", "Analysis",
           "Rewrite", "ALL", "count_ops", "iter_graphs"]
