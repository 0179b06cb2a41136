"""What an implementation under test can observe of itself, as named observation keys.

An implementation cannot see the whole model state: it has no reason to know
which MPN the host picked, or the guest's LRU order. The keys below are what a
VMM and a balloon driver usually can report, per VM (``vms/*/...``, ``*`` the VM
number) or for the host (``host/...``):

* *paths* into :meth:`State.to_dict` (the same keys as the ``observe`` field of
  a trace step): the fields the state schema (:mod:`ballast.model.schema`) marks
  observable, namely the VMM's target and ballooned set, the module's target,
  ``actual``, balloon and refused sets, the report queues, the guest's online vCPUs
  and the host's idle processors;
* *counts* derived from the state, for things an implementation knows only as
  a number: free guest pages, backed guest pages, free and used host pages;
* *contents*, so that data lost or leaked while every count stays right is
  seen: the token a process would read back from each of its virtual pages
  (``vms/*/guest/tokens``), a digest of a VM's resident contents
  (``vms/*/guest/digest``, :func:`contents_digest`), and the machine pages
  that left a VM without being scrubbed (``host/unscrubbed_count``).

Counts and contents are defined once, in :mod:`ballast.model.derived`, so a trace's
``observe`` carries every key an implementation may declare, and ``ballast replay`` of a
divergence's trace shows the difference.

An implementation declares the keys it provides in its ``hello``; only those
are compared.

>>> from ballast.model import initial_state, preset
>>> cfg = preset("virtio")
>>> obs = observe(initial_state(cfg), expand_keys(cfg, ["vms/*/module/actual", "host/free_count"]))
>>> obs
{'vms/0/module/actual': 0, 'host/free_count': 4}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from ballast.model.config import Config
from ballast.model.contents import contents_digest, read_back
from ballast.model.derived import DERIVED
from ballast.model.schema import SCHEMA, Kind
from ballast.model.state import State

__all__ = [
    "OBSERVATIONS",
    "ObservationKey",
    "compare",
    "contents_digest",
    "in_trace",
    "read_back",
    "expand_keys",
    "is_state_path",
    "observation_problem",
    "observe",
    "observe_key",
]

Value = int | bool | list[int]


@dataclass(frozen=True)
class ObservationKey:
    """One observable quantity, for the host or per VM."""

    template: str
    """The key as declared, ``*`` standing for the VM number."""
    doc: str
    """What it means, in domain words."""
    derived: Callable[[State, int], Value] | None = None
    """For counts: how the model computes it (VM number, or 0 for host keys).
    None for a path into :meth:`State.to_dict`."""
    unordered: bool = False
    """A set or a queue: compared as sorted lists, whatever order the implementation uses."""
    listed: bool = False
    """Its value is an array (of integers, or of arrays of them), not one integer."""

    @property
    def per_vm(self) -> bool:
        """Whether the key exists once per VM."""
        return self.template.startswith("vms/*/")


def _sentence(text: str) -> str:
    # "The balloon size ..." reads "VMM: the balloon size ..."; "PPNs ..." stays.
    return text[0].lower() + text[1:] if text[1:2].islower() else text


_STATE_PATHS = [ObservationKey(f.path, f"{f.owner.value}: {_sentence(f.doc)}",
                               unordered=f.kind in (Kind.SET, Kind.QUEUE),
                               listed=f.kind is not Kind.COUNTER)
                for f in SCHEMA if f.observable]
"""The state paths, derived from the state schema: its fields an implementation can
usually report."""

_KEYS = _STATE_PATHS + [ObservationKey(d.template, d.doc, d.value, listed=d.listed)
                        for d in DERIVED.values()]
"""The state paths, then the counts and contents the model derives from a state
(:mod:`ballast.model.derived`, where a trace's ``observe`` reads them too)."""

OBSERVATIONS: dict[str, ObservationKey] = {k.template: k for k in _KEYS}
"""Every observation key an implementation may declare, by template."""


def is_state_path(key: str) -> bool:
    """Whether a concrete key is a path into the state (usable in a trace's ``observe``).

    >>> is_state_path("vms/0/module/actual"), is_state_path("host/free_count")
    (True, False)
    """
    return _template_of(key).derived is None


def in_trace(key: str) -> bool:
    """Whether a concrete key may stand in a trace step's ``observe`` (a state path or a
    derived count or content, which :func:`ballast.model.trace.observe_matches` reads):
    every key an implementation may declare.

    >>> in_trace("vms/0/guest/tokens"), in_trace("host/free_count")
    (True, True)
    """
    return is_state_path(key) or _template_of(key).template in DERIVED


def _template_of(key: str) -> ObservationKey:
    parts = key.split("/")
    if len(parts) > 2 and parts[0] == "vms" and parts[1].isdigit():
        parts[1] = "*"
    return OBSERVATIONS["/".join(parts)]


def expand_keys(cfg: Config, templates: Iterable[str]) -> list[str]:
    """Concrete keys for declared templates: one per VM for ``vms/*`` keys.

    >>> from ballast.model import Config
    >>> expand_keys(Config(vms=2), ["vms/*/target", "host/free_count"])
    ['vms/0/target', 'vms/1/target', 'host/free_count']
    """
    out: list[str] = []
    for t in templates:
        key = OBSERVATIONS[t]
        if key.per_vm:
            out += [t.replace("*", str(v), 1) for v in range(cfg.vms)]
        else:
            out.append(t)
    return out


def _lookup(data: Any, path: str) -> Any:  # -> a JSON value
    for part in path.split("/"):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


def observe_key(s: State, key: str, full: Mapping[str, Any] | None = None) -> Value:
    """The model's value of one concrete key in state ``s``.

    ``full`` is ``s.to_dict()`` if the caller already has it.
    """
    spec = _template_of(key)
    if spec.derived is not None:
        parts = key.split("/")
        vm = int(parts[1]) if spec.per_vm else 0
        return spec.derived(s, vm)
    value = _lookup(full if full is not None else s.to_dict(), key)
    return sorted(value) if spec.unordered else value


def observe(s: State, keys: Iterable[str]) -> dict[str, Value]:
    """The model's observation of ``s`` for concrete ``keys``."""
    full = s.to_dict()
    return {k: observe_key(s, k, full) for k in keys}


def _normal(key: str, value: Any) -> Any:
    if _template_of(key).unordered and isinstance(value, list):
        try:
            return sorted(value)
        except TypeError:
            return value
    return value


def observation_problem(key: str, value: Any) -> str | None:
    """Why ``value`` is no value of observation ``key`` (a concrete key), or None: a number
    key takes an integer, a set, queue or list key an array of integers (or of arrays of
    them), never floats, truth values or strings.

    >>> observation_problem("vms/0/target", 2) is None, observation_problem("vms/0/target", 2.0)
    (True, "must be an integer, as the model's is")
    >>> observation_problem("vms/0/ballooned", [1, True])
    "must be an array of integers, as the model's is"
    """
    if not _template_of(key).listed:
        return None if _plain_int(value) else "must be an integer, as the model's is"
    if isinstance(value, list) and all(
            _plain_int(x) or (isinstance(x, list) and all(_plain_int(y) for y in x))
            for x in value):
        return None
    return "must be an array of integers, as the model's is"


def _plain_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def compare(model: Mapping[str, Any], impl: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, model value, implementation value) for every key on which they differ.

    Sets and queues are compared whatever order the implementation lists them in.

    >>> compare({"vms/0/ballooned": [1, 2]}, {"vms/0/ballooned": [2, 1]})
    []
    >>> compare({"vms/0/target": 1}, {"vms/0/target": 2})
    [('vms/0/target', 1, 2)]
    """
    out = []
    for key, want in model.items():
        have = _normal(key, impl.get(key))
        if have != want or type(have) is not type(want):
            out.append((key, want, impl.get(key)))
    return out
