"""Each action of :mod:`ballast.model.actions` as a Z3 transition relation.

An action with concrete arguments becomes a *step*: a guard (a Z3 formula over
the pre-state) and the post-state as terms over the pre-state, so the
relation is ``T(pre, post) = guard(pre) and post == effect(pre)``. Arguments
that index the state (VM, PPN, VPN, host page, token, vCPU, the set of PPNs the
guest's allocator hands out) are enumerated per configuration; the state stays
symbolic. Every step mirrors the Python function of the same name, and
``tests/proofs`` checks on random reachable states that both agree.

>>> from ballast.model.config import Config
>>> from ballast.model.state import initial_state
>>> from ballast.proofs.encoding import encode
>>> cfg = Config(vms=1, guest_pages=2, machine_pages=2)
>>> st = step(cfg, encode(cfg, initial_state(cfg)), "host_set_target", {"vm": 0, "pages": 1})
>>> z3.simplify(st.guard), z3.simplify(st.post["target", 0])
(True, 1)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import z3

from ballast.model.action_kernels import KERNELS
from ballast.model import arguments
from ballast.model.actions import ACTIONS
from ballast.model.arguments import Argument
from ballast.model.config import Config
from ballast.model.ops import Kernel
from ballast.proofs.encoding import WIDTH, SymState
from ballast.proofs.interpret import run_kernel, unback

__all__ = ["ENCODED", "Choice", "Step", "choose", "concrete_instances", "encoded_actions",
           "instances", "kernel_effect", "step", "unback"]

Args = dict[str, Any]


@dataclass(frozen=True)
class Step:
    """One action with concrete arguments applied to a symbolic pre-state."""

    name: str
    args: Args
    guard: z3.BoolRef
    post: SymState
    sym: Args = field(default_factory=dict)
    """The arguments as the effect saw them (Choice arguments as Z3 numbers)."""


Effect = Callable[[Config, SymState, Args], tuple[z3.BoolRef, SymState]]
ENCODED: dict[str, Effect] = {}
"""Every encoded action by its model name."""
_INSTANCES: dict[str, Callable[[Config], Iterator[Args]]] = {}


def _encodes(name: str, inst: Callable[[Config], Iterator[Args]]
             ) -> Callable[[Effect], Effect]:
    assert name in ACTIONS, name

    def register(fn: Effect) -> Effect:
        ENCODED[name] = fn
        _INSTANCES[name] = inst
        return fn
    return register


def encoded_actions(cfg: Config) -> list[str]:
    """The model's actions that exist in ``cfg`` and are encoded, in model order."""
    return [n for n, spec in ACTIONS.items() if spec.feature(cfg) and n in ENCODED]


def instances(cfg: Config, name: str) -> list[Args]:
    """Every argument tuple the encoding enumerates for an action in ``cfg``."""
    return list(_INSTANCES[name](cfg))


@dataclass(frozen=True)
class Choice:
    """An argument left symbolic: any whole number in ``lo..hi``.

    One query then covers every value at once (fewer, larger solver calls);
    ``value`` turns a number into the model's argument (``refuse=5`` is ``(0, 2)``).
    """

    lo: int
    hi: int
    kind: str = "int"
    """``int`` for a plain number, ``refuse`` for vmm_reclaim's refused PPNs as a bit mask
    (bit ``q`` for PPN ``q``; bit ``guest_pages`` for a PPN out of range)."""

    def value(self, n: int) -> Any:
        """The model's argument for the number ``n``."""
        if self.kind == "refuse":
            return tuple(q for q in range(n.bit_length()) if n >> q & 1)
        return n

    def values(self) -> list[Any]:
        """Every argument this choice stands for."""
        return [self.value(n) for n in range(self.lo, self.hi + 1)]


def concrete_instances(cfg: Config, name: str) -> list[Args]:
    """Every argument tuple with each :class:`Choice` expanded into its values."""
    out: list[Args] = []
    for args in instances(cfg, name):
        expanded: list[Args] = [{}]
        for k, v in args.items():
            vals = v.values() if isinstance(v, Choice) else [v]
            expanded = [{**e, k: x} for e in expanded for x in vals]
        out += expanded
    return out


def step(cfg: Config, s: SymState, name: str, args: Args,
         effects: Mapping[str, Effect] | None = None, tag: str = "") -> Step:
    """The guard and post-state of action ``name`` with ``args`` from ``s``.

    A :class:`Choice` argument becomes a fresh number ``arg!NAME!KEY!TAG``
    constrained to its range; :func:`choose` reads it back from a Z3 model.
    """
    fn = (effects or ENCODED)[name]
    sym: Args = {}
    ranges = []
    for k, v in args.items():
        if isinstance(v, Choice):
            var = z3.BitVec(f"arg!{name}!{k}!{tag}", WIDTH)
            ranges.append(z3.And(var >= v.lo, var <= v.hi))
            sym[k] = var
        else:
            sym[k] = v
    guard, post = fn(cfg, s, sym)
    return Step(name, args, z3.And(*ranges, guard) if ranges else guard, post, sym)


def choose(st: Step, model: z3.ModelRef) -> Args:
    """The concrete arguments a Z3 model picks for a step."""
    out: Args = {}
    for k, v in st.args.items():
        if isinstance(v, Choice):
            n = model.eval(st.sym[k], model_completion=True).as_signed_long()
            out[k] = v.value(int(n))
        else:
            out[k] = v
    return out


def _symbolic(arg: Argument, values: Sequence[Any]) -> Choice:
    assert isinstance(values, range) and values.step == 1, "a symbolic argument is a range"
    return Choice(values.start, values.stop - 1, arg.kind)


def _instances_of(name: str) -> Callable[[Config], Iterator[Args]]:
    """The instance list of an action, from the model's description of its arguments
    (:mod:`ballast.model.arguments`): symbolic arguments become :class:`Choice` numbers."""
    def each(cfg: Config) -> Iterator[Args]:
        return arguments.instances(cfg, name, _symbolic)
    return each


# --------------------------------------------------------------------------
# Actions written once (:mod:`ballast.model.action_kernels`), read by the Z3 interpreter


def kernel_effect(kernel: Kernel) -> Effect:
    """The transition relation of an action kernel (named after the kernel)."""

    def effect(cfg: Config, s: SymState, a: Args) -> tuple[z3.BoolRef, SymState]:
        return run_kernel(kernel, s, a)
    effect.__module__, effect.__qualname__ = kernel.__module__, kernel.__qualname__
    return effect


for _name in ACTIONS:
    if _name in KERNELS and (_name in arguments.ARGUMENTS or _name == "vmm_share"):
        _encodes(_name, _instances_of(_name))(kernel_effect(KERNELS[_name]))
