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
  that left a VM without being scrubbed (``host/unscrubbed_count``); defined
  in :mod:`ballast.model.contents`, so a trace's ``observe`` may carry them too.

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

from ballast.model.actions import held_pages
from ballast.model.config import Config
from ballast.model.contents import (CONTENT_KEYS, contents_digest, read_back, resident_digest,
                                    unscrubbed_count)
from ballast.model.schema import SCHEMA, Kind
from ballast.model.state import BALLOON, FREE, UNBACKED, State

__all__ = [
    "OBSERVATIONS",
    "ObservationKey",
    "compare",
    "contents_digest",
    "in_trace",
    "expand_keys",
    "is_state_path",
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

    @property
    def per_vm(self) -> bool:
        """Whether the key exists once per VM."""
        return self.template.startswith("vms/*/")


def _guest_free(s: State, vm: int) -> Value:
    return s.vms[vm].guest.ppn_use.count(FREE)


def _guest_balloon(s: State, vm: int) -> Value:
    return s.vms[vm].guest.ppn_use.count(BALLOON)


def _backed(s: State, vm: int) -> Value:
    return sum(1 for m in s.vms[vm].p2m if m != UNBACKED)


def _host_free(s: State, vm: int) -> Value:
    return len(s.host.free)


def _host_in_use(s: State, vm: int) -> Value:
    return len(s.host.in_use)


def _host_swap(s: State, vm: int) -> Value:
    return len(s.host.swap)


def _vm_swap(s: State, vm: int) -> Value:
    return sum(1 for owner, _, _ in s.host.swap if owner == vm)


def _held(s: State, vm: int) -> Value:
    return held_pages(s, vm)


def _tokens(s: State, vm: int) -> Value:
    return read_back(s, vm)


def _digest(s: State, vm: int) -> Value:
    return resident_digest(s, vm)


def _unscrubbed(s: State, vm: int) -> Value:
    return unscrubbed_count(s)


def _sentence(text: str) -> str:
    # "The balloon size ..." reads "VMM: the balloon size ..."; "PPNs ..." stays.
    return text[0].lower() + text[1:] if text[1:2].islower() else text


_STATE_PATHS = [ObservationKey(f.path, f"{f.owner.value}: {_sentence(f.doc)}",
                               unordered=f.kind in (Kind.SET, Kind.QUEUE))
                for f in SCHEMA if f.observable]
"""The state paths, derived from the state schema: its fields an implementation can
usually report."""

_KEYS = _STATE_PATHS + [
    ObservationKey("vms/*/guest/free_count", "Guest: PPNs on its free list.", _guest_free),
    ObservationKey("vms/*/guest/balloon_count", "Guest: PPNs held by the balloon module.",
                   _guest_balloon),
    ObservationKey("vms/*/backed_count", "VMM: PPNs backed by a machine page.", _backed),
    ObservationKey("host/free_count", "Host: MPNs in the free pool.", _host_free),
    ObservationKey("host/in_use_count", "Host: MPNs in the host's own use.", _host_in_use),
    ObservationKey("host/swap_count", "Host: guest pages in host swap slots.", _host_swap),
    ObservationKey("vms/*/swap_count", "VMM: PPNs of the VM paged out to host swap (by the "
                   "host, or by the VMM for a VM over its target).", _vm_swap),
    ObservationKey("vms/*/held_count", "VMM: machine pages the VM holds for itself (backed, "
                   "not shared): what the host recovers down to guest_pages - target.", _held),
    ObservationKey("vms/*/guest/tokens",
                   "Guest: per VPN, the token its process would read back now (0: never "
                   "written), from memory, host swap or the guest's own disk.", _tokens),
    ObservationKey("vms/*/guest/digest",
                   "Guest: digest of its resident contents (contents_digest of the "
                   "resident (VPN, token) pairs).", _digest),
    ObservationKey("host/unscrubbed_count",
                   "Host: MPNs free or in the host's own use that still hold a guest's "
                   "data (not scrubbed to the zero page).", _unscrubbed),
]

OBSERVATIONS: dict[str, ObservationKey] = {k.template: k for k in _KEYS}
"""Every observation key an implementation may declare, by template."""


def is_state_path(key: str) -> bool:
    """Whether a concrete key is a path into the state (usable in a trace's ``observe``).

    >>> is_state_path("vms/0/module/actual"), is_state_path("host/free_count")
    (True, False)
    """
    return _template_of(key).derived is None


def in_trace(key: str) -> bool:
    """Whether a concrete key may stand in a trace step's ``observe`` (a state path or
    a content key, which :func:`ballast.model.trace.observe_matches` reads).

    >>> in_trace("vms/0/guest/tokens"), in_trace("host/free_count")
    (True, False)
    """
    return is_state_path(key) or _template_of(key).template in CONTENT_KEYS


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
