"""The virtio profile of the model: what a virtio-balloon device and driver can see, and the
rules of the VirtIO specification, section 5.5, as named properties over it.

The **profile** is a projection of the model's state onto one VM's virtio-balloon
interface (:func:`project`): the target ``num_pages`` the host set in the config space,
the target the driver last read, the balloon (PFNs whose inflate the device acknowledged
and that are not reported for deflation), the PFNs in flight on the inflate and deflate
queues, ``actual`` as last written by the driver, and the negotiated features.  A model
step becomes zero or more **profile events** (:func:`events_of`); an implementation's
log (a QEMU trace) becomes the same events directly.  :class:`VirtioTracker` keeps the
profile incrementally (Python sets, one update per buffer), and the rules
(:data:`VIRTIO_RULES`) are checked on it before every event, so the same code judges a
projected model run and a real trace.

How the profile maps the model (one source of truth: nothing here adds behaviour):

========================  ====================================================
model                     profile
========================  ====================================================
``VmState.target``        ``num_pages`` (device config, set by the host)
``module.target``         ``polled`` (what the driver last read: ``balloon_poll``)
``module.balloon`` and    ``balloon`` (acknowledged by the device, not reported
``acked_inflate``         for deflation)
``inflate_queue``         ``inflating`` (on inflateq, not yet acknowledged)
``deflate_queue``         ``deflating`` (on deflateq, not yet acknowledged)
``module.actual``         ``actual``
``must_tell_host``,       ``features`` (``MUST_TELL_HOST``, ``DEFLATE_ON_OOM``)
``deflate_on_oom``
========================  ====================================================

**Page migration** (Linux compaction: a one-page inflate of the new page, acknowledged,
then a one-page deflate of the old one, ``actual`` unchanged) is the model's
``balloon_migrate`` and ``balloon_migrate_release`` (``migration`` feature); the rules
below allow it because the specification does.  Free page hinting
(free_page_vq and ``free_page_hint_cmd_id``: command ids, STOP and DONE), free page reporting
(reporting_vq: ``report``, ``report_ack``) and the statistics queue (``stats``) are
projected, page poisoning is invisible here; guest memory
pressure (DEFLATE_ON_OOM) is guest-internal and not visible to the device, so with that
feature a deflate is never blamed on rule 3.  Conversely the model's VMM may *refuse*
pages (vmw_balloon); virtio has no refusal (profile event ``inflate_refused``).

>>> t = VirtioTracker(frozenset())
>>> for e in [VirtioEvent("set_target", value=2), VirtioEvent("read_target", value=2),
...           VirtioEvent("inflate", (7, 8)), VirtioEvent("inflate_ack", (7, 8))]:
...     assert not t.violations(e)
...     t.apply(e)
>>> [r.name for r, _ in t.violations(VirtioEvent("write_actual", value=3))]
['virtio_5_5_6_1_rule9_actual_matches_balloon']
>>> [r.name for r, _ in t.violations(VirtioEvent("inflate", (8,)))]
['virtio_5_5_6_no_page_inflated_twice']
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from typing import AbstractSet, Callable, Iterable, Protocol

from ballast.model.actions import Action, ArgValue
from ballast.model.config import Config
from ballast.model.state import FREE, State, VmState

__all__ = [
    "DEFLATE_ON_OOM",
    "EVENT_KINDS",
    "HINT_DONE_ID",
    "HINT_STOP_ID",
    "MUST_TELL_HOST",
    "PAGE_USE_ONLY",
    "PROJECTIONS",
    "Level",
    "VIRTIO_RULES",
    "VirtioEvent",
    "VirtioRule",
    "VirtioTracker",
    "VirtioView",
    "end_warnings",
    "events_of",
    "features_of",
    "project",
]

MUST_TELL_HOST = "MUST_TELL_HOST"
DEFLATE_ON_OOM = "DEFLATE_ON_OOM"
FREE_PAGE_HINT = "FREE_PAGE_HINT"
PAGE_REPORTING = "PAGE_REPORTING"

EVENT_KINDS = ("set_target", "read_target", "inflate", "inflate_ack", "inflate_refused",
               "deflate", "deflate_ack", "write_actual", "use", "reset", "report",
               "report_ack", "stats", "hint_request", "hint_stop", "hint_start", "hint",
               "hint_skip", "discard")
"""Profile events: the host sets ``num_pages``; the driver reads it; the driver puts PFNs on
inflateq; the device acknowledges (or, model only, refuses) them; the same for deflateq;
the driver writes ``actual``; the guest uses PFNs; the device is reset (guest reboot);
the driver reports free PFNs on reporting_vq and the device returns the report; the driver
sends statistics on statsq (``value``: free pages); free page hinting: the device writes a new
command id to ``free_page_hint_cmd_id`` (``hint_request``) or STOP / DONE (``hint_stop``), the
driver sends the id it read back on free_page_vq (``hint_start``) and hints free PFNs
(``hint``, ``value``: the command id they are tagged with), and the migration skips the pages
hinted in the cycle under way (``hint_skip``); the device gives the memory of PFNs back to
the host (``discard``: seen in a real device's log; in the model it is part of the VMM's
processing of a report, so no model step projects it)."""

HINT_STOP_ID = 0
"""``VIRTIO_BALLOON_CMD_ID_STOP`` in the profile (the model's ``HINT_STOP``)."""
HINT_DONE_ID = 1
"""``VIRTIO_BALLOON_CMD_ID_DONE`` in the profile (the model's ``HINT_DONE``); every larger id
names a hint cycle."""


@dataclass(frozen=True, slots=True)
class VirtioEvent:
    """One profile event: ``kind`` (one of :data:`EVENT_KINDS`), its PFNs or its value."""

    kind: str
    pfns: tuple[int, ...] = ()
    value: int = 0


class Level(str, Enum):
    """RFC 2119 level of a rule: a broken MUST is a violation, a broken SHOULD a warning."""

    MUST = "MUST"
    SHOULD = "SHOULD"


class View(Protocol):
    """What a rule reads: a frozen :class:`VirtioView` or a live :class:`VirtioTracker`."""

    @property
    def num_pages(self) -> int: ...
    @property
    def polled(self) -> int: ...
    @property
    def actual(self) -> int: ...
    @property
    def balloon(self) -> AbstractSet[int]: ...
    @property
    def inflating(self) -> AbstractSet[int]: ...
    @property
    def deflating(self) -> AbstractSet[int]: ...
    @property
    def features(self) -> frozenset[str]: ...
    @property
    def reporting(self) -> AbstractSet[int]: ...
    @property
    def hint_cmd(self) -> int: ...
    @property
    def hint_started(self) -> int: ...
    @property
    def hinted(self) -> AbstractSet[int]: ...


@dataclass(frozen=True, slots=True)
class VirtioView:
    """The virtio profile of one VM at one moment (see the module docstring)."""

    num_pages: int
    polled: int
    actual: int
    balloon: frozenset[int]
    inflating: frozenset[int]
    deflating: frozenset[int]
    features: frozenset[str] = field(default=frozenset())
    reporting: frozenset[int] = field(default=frozenset())
    hint_cmd: int = HINT_STOP_ID
    """The free page hint command id the device shows (STOP, DONE, or a cycle's id)."""
    hint_started: int = HINT_STOP_ID
    """The command id the driver last sent back on free_page_vq (STOP: none yet)."""
    hinted: frozenset[int] = field(default=frozenset())
    """PFNs hinted in the cycle under way and not taken into use since: the pages the
    migration may skip."""


def features_of(cfg: Config) -> frozenset[str]:
    """The virtio feature names a model configuration stands for.

    >>> sorted(features_of(Config(must_tell_host=False, deflate_on_oom=True)))
    ['DEFLATE_ON_OOM']
    """
    return frozenset(name for name, on in ((MUST_TELL_HOST, cfg.must_tell_host),
                                           (DEFLATE_ON_OOM, cfg.deflate_on_oom)) if on)


def project(cfg: Config, s: State, vm: int = 0) -> VirtioView:
    """The virtio profile of VM ``vm`` in model state ``s``.

    >>> from ballast.model.state import initial_state
    >>> cfg = Config(vms=1, guest_pages=2, machine_pages=2)
    >>> project(cfg, initial_state(cfg)).balloon
    frozenset()
    """
    v = s.vms[vm]
    m = v.module
    return VirtioView(num_pages=v.target, polled=m.target, actual=m.actual,
                      balloon=frozenset(m.balloon | v.acked_inflate),
                      inflating=frozenset(v.inflate_queue), deflating=frozenset(v.deflate_queue),
                      features=features_of(cfg), reporting=v.report_queue,
                      hint_cmd=v.hint_cmd_id, hint_started=m.hinting_for, hinted=v.hinted)


Projection = Callable[[Config, VmState, VmState, dict[str, ArgValue]], list[VirtioEvent]]
"""How one action's step shows on the virtio interface: (config, VM before, VM after, args)."""

PROJECTIONS: dict[str, Projection] = {}
"""The actions with virtio events of their own, by model name."""

PAGE_USE_ONLY: frozenset[str] = frozenset({
    "host_set_cpu_target", "host_take_page", "host_return_page", "host_swap_out", "vmm_share",
    "vmm_back_page",
    "vmm_cpu_reclaim", "guest_read", "guest_write", "guest_evict", "balloon_free_refused",
    "balloon_cpu_offline", "balloon_cpu_online", "balloon_report_done",
    "balloon_freeze", "rogue_cpu_park", "rogue_cpu_online", "vmm_enforce_cpu_target",
    "vmm_drop_stale_reports", "vmm_swap_over_target"})
"""The actions the device and driver do not see, except for free PFNs the guest takes into
use. An action in neither table is not projected knowingly (a gap, reported by checkers)."""


def _projects(name: str) -> Callable[[Projection], Projection]:
    def register(fn: Projection) -> Projection:
        PROJECTIONS[name] = fn
        return fn
    return register


def events_of(cfg: Config, pre: State, act: Action, post: State, vm: int = 0) -> list[VirtioEvent]:
    """The profile events one model step makes visible on VM ``vm``'s virtio interface."""
    args = act.kwargs
    if args.get("vm") != vm:
        return []
    a, b = pre.vms[vm], post.vms[vm]
    projection = PROJECTIONS.get(act.name)
    if projection is not None:
        return projection(cfg, a, b, args)
    used = tuple(p for p, (x, y) in enumerate(zip(a.guest.ppn_use, b.guest.ppn_use))
                 if x == FREE and y >= 0)
    return [VirtioEvent("use", used)] if used else []


@_projects("host_set_target")
def _set_target(cfg: Config, a: VmState, b: VmState, args: dict[str, ArgValue]
                ) -> list[VirtioEvent]:
    return [VirtioEvent("set_target", value=b.target)]


@_projects("balloon_poll")
def _poll(cfg: Config, a: VmState, b: VmState, args: dict[str, ArgValue]) -> list[VirtioEvent]:
    return [VirtioEvent("read_target", value=b.module.target)]


@_projects("balloon_inflate")
def _inflate(cfg: Config, a: VmState, b: VmState, args: dict[str, ArgValue]
             ) -> list[VirtioEvent]:
    return [VirtioEvent("inflate", _ints(args["ppns"]))]


@_projects("vmm_reclaim")
def _reclaim(cfg: Config, a: VmState, b: VmState, args: dict[str, ArgValue]
             ) -> list[VirtioEvent]:
    accepted = tuple(sorted(b.acked_inflate - a.acked_inflate))
    refused = tuple(sorted(set(a.inflate_queue) - set(accepted)))
    out = [VirtioEvent("inflate_ack", accepted)] if accepted else []
    return out + ([VirtioEvent("inflate_refused", refused)] if refused else [])


@_projects("balloon_deflate")
def _deflate(cfg: Config, a: VmState, b: VmState, args: dict[str, ArgValue]
             ) -> list[VirtioEvent]:
    ppns = _ints(args["ppns"])
    freed = [] if cfg.must_tell_host else [VirtioEvent("use", ppns)]
    return [VirtioEvent("deflate", ppns)] + freed


@_projects("balloon_migrate")
def _migrate(cfg: Config, a: VmState, b: VmState, args: dict[str, ArgValue]
             ) -> list[VirtioEvent]:
    return [VirtioEvent("inflate", _ints((args["new"],)))]


@_projects("balloon_migrate_release")
def _migrate_release(cfg: Config, a: VmState, b: VmState, args: dict[str, ArgValue]
                     ) -> list[VirtioEvent]:
    old = _ints((args["old"],))
    return [VirtioEvent("deflate", old)] + ([] if cfg.must_tell_host else [VirtioEvent("use", old)])


@_projects("balloon_oom_deflate")
def _oom_deflate(cfg: Config, a: VmState, b: VmState, args: dict[str, ArgValue]
                 ) -> list[VirtioEvent]:
    return _deflate(cfg, a, b, args)


@_projects("vmm_release")
def _release(cfg: Config, a: VmState, b: VmState, args: dict[str, ArgValue]
             ) -> list[VirtioEvent]:
    return [VirtioEvent("deflate_ack", tuple(sorted(set(a.deflate_queue))))]


@_projects("balloon_complete")
def _complete(cfg: Config, a: VmState, b: VmState, args: dict[str, ArgValue]
              ) -> list[VirtioEvent]:
    out = [VirtioEvent("write_actual", value=b.module.actual)]
    back = _newly_free(a.guest.ppn_use, b.guest.ppn_use)
    return out + ([VirtioEvent("use", back)] if cfg.must_tell_host and back else [])


@_projects("guest_reset")
def _reset(cfg: Config, a: VmState, b: VmState, args: dict[str, ArgValue]) -> list[VirtioEvent]:
    return [VirtioEvent("reset")]


@_projects("rogue_report")
def _rogue_report(cfg: Config, a: VmState, b: VmState, args: dict[str, ArgValue]
                  ) -> list[VirtioEvent]:
    kind = "inflate" if args["queue"] == "inflate" else "deflate"
    return [VirtioEvent(kind, _ints((args["ppn"],)))]


@_projects("rogue_touch")
def _rogue_touch(cfg: Config, a: VmState, b: VmState, args: dict[str, ArgValue]
                 ) -> list[VirtioEvent]:
    return [VirtioEvent("use", _ints((args["ppn"],)))]


@_projects("rogue_set_actual")
def _rogue_actual(cfg: Config, a: VmState, b: VmState, args: dict[str, ArgValue]
                  ) -> list[VirtioEvent]:
    return [VirtioEvent("write_actual", value=b.module.actual)]


@_projects("balloon_report_free_pages")
def _report_free(cfg: Config, a: VmState, b: VmState, args: dict[str, ArgValue]
                 ) -> list[VirtioEvent]:
    return [VirtioEvent("report", _ints(args["ppns"]))]


@_projects("vmm_discard_reported")
def _discard_reported(cfg: Config, a: VmState, b: VmState, args: dict[str, ArgValue]
                      ) -> list[VirtioEvent]:
    return [VirtioEvent("report_ack", tuple(sorted(a.report_queue)))]


@_projects("balloon_report_stats")
def _report_stats(cfg: Config, a: VmState, b: VmState, args: dict[str, ArgValue]
                  ) -> list[VirtioEvent]:
    return [VirtioEvent("stats", value=b.stats_free)]


@_projects("balloon_restore")
def _restore(cfg: Config, a: VmState, b: VmState, args: dict[str, ArgValue]
             ) -> list[VirtioEvent]:
    return [VirtioEvent("write_actual", value=b.module.actual)]


@_projects("vmm_request_hints")
def _request_hints(cfg: Config, a: VmState, b: VmState, args: dict[str, ArgValue]
                   ) -> list[VirtioEvent]:
    return [VirtioEvent("hint_request", value=b.hint_cmd_id)]


@_projects("vmm_stop_hints")
def _stop_hints(cfg: Config, a: VmState, b: VmState, args: dict[str, ArgValue]
                ) -> list[VirtioEvent]:
    return [VirtioEvent("hint_stop", value=b.hint_cmd_id)]


@_projects("balloon_hint_start")
def _hint_start(cfg: Config, a: VmState, b: VmState, args: dict[str, ArgValue]
                ) -> list[VirtioEvent]:
    return [VirtioEvent("hint_start", value=b.module.hinting_for)]


@_projects("balloon_hint_free_pages")
def _hint_free(cfg: Config, a: VmState, b: VmState, args: dict[str, ArgValue]
               ) -> list[VirtioEvent]:
    return [VirtioEvent("hint", _ints(args["ppns"]), value=a.module.hinting_for)]


@_projects("vmm_skip_hinted")
def _skip_hinted(cfg: Config, a: VmState, b: VmState, args: dict[str, ArgValue]
                 ) -> list[VirtioEvent]:
    return [VirtioEvent("hint_skip", tuple(sorted(a.hinted)))]


def _ints(value: object) -> tuple[int, ...]:
    assert isinstance(value, tuple)
    return tuple(int(x) for x in value)


def _newly_free(before: tuple[int, ...], after: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(p for p, (x, y) in enumerate(zip(before, after)) if x != FREE and y == FREE)


class VirtioTracker:
    """The virtio profile kept incrementally: sets of PFNs and counters, O(buffer) per event.

    This is the checker both for projected model runs and for real traces; its
    :meth:`apply` agrees with :func:`project` after every model step (tested).
    """

    __slots__ = ("num_pages", "polled", "actual", "balloon", "inflating", "deflating",
                 "features", "reporting", "hint_cmd", "hint_started", "hinted")

    def __init__(self, features: frozenset[str], view: VirtioView | None = None) -> None:
        self.features = features
        self.num_pages = view.num_pages if view else 0
        self.polled = view.polled if view else 0
        self.actual = view.actual if view else 0
        self.balloon: set[int] = set(view.balloon) if view else set()
        self.inflating: set[int] = set(view.inflating) if view else set()
        self.deflating: set[int] = set(view.deflating) if view else set()
        self.reporting: set[int] = set(view.reporting) if view else set()
        self.hint_cmd = view.hint_cmd if view else HINT_STOP_ID
        self.hint_started = view.hint_started if view else HINT_STOP_ID
        self.hinted: set[int] = set(view.hinted) if view else set()

    def view(self) -> VirtioView:
        """A frozen copy (for reports and tests; costs O(balloon))."""
        return VirtioView(self.num_pages, self.polled, self.actual, frozenset(self.balloon),
                          frozenset(self.inflating), frozenset(self.deflating), self.features,
                          frozenset(self.reporting), self.hint_cmd, self.hint_started,
                          frozenset(self.hinted))

    def violations(self, e: VirtioEvent) -> list[tuple["VirtioRule", str]]:
        """Every rule that event ``e`` would break in the current profile."""
        out = []
        for rule in _BY_KIND.get(e.kind, ()):
            msg = rule.check(self, e)
            if msg is not None:
                out.append((rule, msg))
        return out

    def apply(self, e: VirtioEvent) -> None:
        """Advance the profile by ``e`` (whether or not it broke a rule)."""
        k = e.kind
        if k == "inflate":
            self.inflating.update(e.pfns)
        elif k == "inflate_ack":
            self.inflating.difference_update(e.pfns)
            self.balloon.update(e.pfns)
        elif k == "inflate_refused":
            self.inflating.difference_update(e.pfns)
        elif k == "deflate":
            self.balloon.difference_update(e.pfns)
            self.deflating.update(e.pfns)
        elif k == "deflate_ack":
            self.deflating.difference_update(e.pfns)
        elif k == "write_actual":
            self.actual = e.value
        elif k == "read_target":
            self.polled = e.value
        elif k == "set_target":
            self.num_pages = e.value
        elif k == "reset":
            self.polled = self.actual = 0
            self.balloon.clear()
            self.inflating.clear()
            self.deflating.clear()
            self.reporting.clear()
        elif k == "report":
            self.reporting.update(e.pfns)
        elif k == "report_ack":
            self.reporting.difference_update(e.pfns)
        elif k == "use":
            if self.hinted:  # a page written after its hint is dirty again
                self.hinted.difference_update(e.pfns)
        elif k in ("hint_request", "hint_stop"):
            self.hint_cmd = e.value
            self.hinted.clear()
        elif k == "hint_start":
            self.hint_started = e.value
        elif k == "hint":
            if e.value == self.hint_cmd:  # the device takes the hints of the cycle under way
                self.hinted.update(e.pfns)
        elif k == "hint_skip":
            self.hinted.clear()
        elif k not in ("stats", "discard"):
            raise ValueError(f"unknown virtio profile event {k!r}")


@dataclass(frozen=True)
class VirtioRule:
    """One rule of VirtIO section 5.5 as a property of the virtio profile."""

    name: str
    """snake_case name citing the section and rule number."""
    level: Level
    """MUST (violation) or SHOULD (warning)."""
    cites: str
    """Where the rule is in the specification."""
    doc: str
    """What holds, in domain words."""
    kinds: tuple[str, ...]
    """The profile events the rule judges."""
    check: Callable[[View, VirtioEvent], str | None]
    """``(profile before the event, event) -> None | what is wrong``."""
    requires: str | None = None
    """The feature without which the rule says nothing (None: always in force)."""

    @property
    def summary(self) -> str:
        """The first paragraph of the docstring, on one line."""
        return " ".join(self.doc.split("\n\n")[0].split())


VIRTIO_RULES: dict[str, VirtioRule] = {}
"""Every rule by name, in specification order."""


def _rule(name: str, level: Level, cites: str, kinds: tuple[str, ...], requires: str | None = None
          ) -> Callable[[Callable[[View, VirtioEvent], str | None]],
                        Callable[[View, VirtioEvent], str | None]]:
    def register(fn: Callable[[View, VirtioEvent], str | None]
                 ) -> Callable[[View, VirtioEvent], str | None]:
        VIRTIO_RULES[name] = VirtioRule(name, level, cites, (fn.__doc__ or "").strip(), kinds, fn,
                                        requires)
        return fn
    return register


def _repeats(pfns: tuple[int, ...]) -> list[int]:
    """PFNs named more than once in one buffer (cheap when there is none)."""
    if len(set(pfns)) == len(pfns):
        return []
    return sorted(p for p, n in Counter(pfns).items() if n > 1)


def _some(pfns: Iterable[int]) -> str:
    items = sorted(pfns)
    shown = ", ".join(str(p) for p in items[:4])
    return shown + (f" (and {len(items) - 4} more)" if len(items) > 4 else "")


@_rule("virtio_5_5_6_no_page_inflated_twice", Level.MUST, "5.5.6 (inflateq carries pages "
       "given to the device; 5.5.6.1 rule 7)", ("inflate",))
def _no_double_inflate(v: View, e: VirtioEvent) -> str | None:
    """No PFN is put on inflateq while it is already in the balloon or in flight there.

    A page in the balloon is not the guest's to give again; QEMU keeps no record of the
    balloon and accepts a double inflate silently, so only a validator sees it."""
    if v.balloon.isdisjoint(e.pfns) and v.inflating.isdisjoint(e.pfns) and not _repeats(e.pfns):
        return None  # the common case, decided by set operations alone
    twice = [p for p in e.pfns if p in v.balloon or p in v.inflating] + _repeats(e.pfns)
    if twice:
        return f"PFN {_some(twice)} inflated while already in the balloon"
    return None


@_rule("virtio_5_5_6_1_rule8_no_deflate_before_inflate_ack", Level.MUST,
       "5.5.6.1 rule 8", ("deflate",))
def _no_early_deflate(v: View, e: VirtioEvent) -> str | None:
    """The driver does not ask to deflate a page whose inflate the device has not acknowledged."""
    if v.inflating.isdisjoint(e.pfns):
        return None
    early = [p for p in e.pfns if p in v.inflating]
    if early:
        return f"PFN {_some(early)} deflated before its inflate was acknowledged"
    return None


@_rule("virtio_5_5_6_1_rule5_deflate_only_balloon_pages", Level.MUST,
       "5.5.6.1 rule 5 (deflateq names pages of the balloon)", ("deflate",))
def _deflate_balloon_only(v: View, e: VirtioEvent) -> str | None:
    ("A page is deflated only if it is in the balloon: never one never inflated or already "
     "deflated.")
    if v.balloon >= set(e.pfns) and not _repeats(e.pfns):
        return None
    stray = [p for p in e.pfns if p not in v.balloon and p not in v.inflating] + _repeats(e.pfns)
    if stray:
        return f"PFN {_some(stray)} deflated but not in the balloon"
    return None


@_rule("virtio_5_5_6_1_rule3_deflate_only_when_asked", Level.MUST,
       "5.5.6.1 rules 2-4", ("deflate",))
def _deflate_when_asked(v: View, e: VirtioEvent) -> str | None:
    """Without DEFLATE_ON_OOM the driver takes pages back only while the balloon is above the
    target it read (num_pages < actual), never below it.

    Judged on the balloon's size (not the last ``actual``), so that page migration (a
    one-page inflate then a one-page deflate) is allowed; the specification's ``<`` and
    ``<=`` disagree, this reads rule 3 as "never below num_pages".  With DEFLATE_ON_OOM the
    guest may deflate under memory pressure, which the device cannot see (rule 4)."""
    if DEFLATE_ON_OOM in v.features:
        return None
    left = len(v.balloon) - len(v.balloon & set(e.pfns))
    if left < v.polled:
        return (f"deflating {len(e.pfns)} pages leaves {left} in the balloon, below the target "
                f"{v.polled} the driver read, without DEFLATE_ON_OOM")
    return None


@_rule("virtio_5_5_6_1_rule9_actual_matches_balloon", Level.MUST, "5.5.6.1 rule 9",
       ("write_actual",))
def _actual_exact(v: View, e: VirtioEvent) -> str | None:
    """Whenever the driver writes ``actual``, it equals the pages inflated (acknowledged) minus
    the pages deflated.

    Judged in the driver's order of events: a real device logs a report when it takes the
    buffer, which may be after a write that already counts it (a driver with two threads,
    such as Linux's worker and OOM notifier); a QEMU log is put in the driver's order before
    this rule reads it (``ballast.validate.qemu.steps.in_driver_order``)."""
    if e.value != len(v.balloon):
        return f"actual written as {e.value} but the balloon holds {len(v.balloon)} pages"
    return None


@_rule("virtio_5_5_6_1_rule7_no_use_before_inflate_ack", Level.MUST, "5.5.6.1 rule 7",
       ("use",))
def _no_use_inflating(v: View, e: VirtioEvent) -> str | None:
    """The guest does not use a page it added to the balloon before the device acknowledged
    the inflate."""
    if v.inflating.isdisjoint(e.pfns):
        return None
    bad = [p for p in e.pfns if p in v.inflating]
    if bad:
        return f"PFN {_some(bad)} used before its inflate was acknowledged"
    return None


@_rule("virtio_5_5_6_1_rule5_tell_before_use", Level.MUST, "5.5.6.1 rules 3 and 5", ("use",))
def _tell_before_use(v: View, e: VirtioEvent) -> str | None:
    """The guest uses a page of the balloon only after telling the device on deflateq."""
    if v.balloon.isdisjoint(e.pfns):
        return None
    bad = [p for p in e.pfns if p in v.balloon]
    if bad:
        return f"PFN {_some(bad)} used while in the balloon, never deflated"
    return None


@_rule("virtio_5_5_6_1_rule6_must_tell_host_wait", Level.MUST, "5.5.6.1 rule 6", ("use",),
       requires=MUST_TELL_HOST)
def _wait_for_deflate_ack(v: View, e: VirtioEvent) -> str | None:
    """With MUST_TELL_HOST the guest uses a deflated page only after the device acknowledged
    the deflate."""
    if MUST_TELL_HOST not in v.features:
        return None
    if v.deflating.isdisjoint(e.pfns):
        return None
    bad = [p for p in e.pfns if p in v.deflating]
    if bad:
        return f"PFN {_some(bad)} used before its deflate was acknowledged (MUST_TELL_HOST)"
    return None


@_rule("virtio_5_5_6_6_no_use_of_reported_page", Level.MUST,
       "5.5.6.6 (free page reporting: the driver reuses a reported page only after the device "
       "has used the buffer)", ("use",),
       requires=PAGE_REPORTING)
def _no_use_reported(v: View, e: VirtioEvent) -> str | None:
    """The guest does not use a page it reported free before the device returned the report.

    Until then the device may discard the page at any moment."""
    if v.reporting.isdisjoint(e.pfns):
        return None
    bad = [p for p in e.pfns if p in v.reporting]
    return f"PFN {_some(bad)} used while on a free page report" if bad else None


@_rule("virtio_5_5_6_6_report_only_free_pages", Level.MUST,
       "5.5.6.6 (reporting_vq carries free pages of the guest)", ("report",),
       requires=PAGE_REPORTING)
def _report_free_only(v: View, e: VirtioEvent) -> str | None:
    """A page reported free is not in the balloon, on inflateq, or on a report in flight."""
    if (v.balloon.isdisjoint(e.pfns) and v.inflating.isdisjoint(e.pfns)
            and v.reporting.isdisjoint(e.pfns) and not _repeats(e.pfns)):
        return None
    bad = [p for p in e.pfns if p in v.balloon or p in v.inflating or p in v.reporting]
    bad += _repeats(e.pfns)
    return f"PFN {_some(bad)} reported free but it is not free" if bad else None


@_rule("virtio_5_5_6_device_discards_only_given_pages", Level.MUST,
       "5.5.6 (the device may take back the memory of the pages the driver gave it: in the "
       "balloon, on inflateq, or on a free page report, 5.5.6.6)", ("discard",))
def _discard_given_only(v: View, e: VirtioEvent) -> str | None:
    """The device gives back to the host only memory the driver gave it.

    A page the device discards is in the balloon, on inflateq or on a free page report in
    flight; any other page holds the guest's data.  Where the host page is larger than the
    balloon's 4 KiB unit (guest RAM on 2 MiB huge pages), every page of it must be given."""
    given = v.balloon, v.inflating, v.reporting
    bad = [p for p in e.pfns if not any(p in pages for pages in given)]
    return f"PFN {_some(bad)} discarded but the driver did not give it" if bad else None


def _is_cycle(cmd_id: int) -> bool:
    """Whether a command id names a hint cycle (neither STOP nor DONE)."""
    return cmd_id > HINT_DONE_ID


@_rule("virtio_5_5_6_5_new_command_id", Level.MUST,
       "5.5.6.5 (the device requests hints by writing a new command id)", ("hint_request",),
       requires=FREE_PAGE_HINT)
def _new_command_id(v: View, e: VirtioEvent) -> str | None:
    """The device starts a hint cycle only with a new command id: not STOP or DONE, not the id
    the driver last sent back, and not while a cycle is under way.

    The id is how the driver and the device tell the hints of this cycle from an older
    one's; an id reused or written over a running cycle lets old hints count."""
    if not _is_cycle(e.value):
        return f"hint cycle requested with command id {e.value}, which is STOP or DONE"
    if e.value == v.hint_started:
        return f"hint cycle requested with command id {e.value}, the one the driver last sent"
    if _is_cycle(v.hint_cmd):
        return f"hint cycle {e.value} requested while cycle {v.hint_cmd} is under way"
    return None


@_rule("virtio_5_5_6_5_end_with_stop_or_done", Level.MUST,
       "5.5.6.5 (VIRTIO_BALLOON_CMD_ID_STOP and VIRTIO_BALLOON_CMD_ID_DONE)", ("hint_stop",),
       requires=FREE_PAGE_HINT)
def _stop_or_done(v: View, e: VirtioEvent) -> str | None:
    """The device ends a hint cycle by writing STOP or DONE, and only a cycle under way."""
    if e.value not in (HINT_STOP_ID, HINT_DONE_ID):
        return f"hint cycle ended with command id {e.value}, neither STOP nor DONE"
    if not _is_cycle(v.hint_cmd):
        return "STOP or DONE written while no hint cycle is under way"
    return None


@_rule("virtio_5_5_6_5_start_the_requested_id", Level.MUST,
       "5.5.6.5 (the driver sends the command id it read before its hints)", ("hint_start",),
       requires=FREE_PAGE_HINT)
def _start_requested(v: View, e: VirtioEvent) -> str | None:
    """The driver sends back on free_page_vq the command id the device shows, once per cycle:
    never STOP, DONE or an id the device did not write."""
    if e.value != v.hint_cmd or not _is_cycle(e.value):
        return (f"the driver started hinting for command id {e.value}, but the device shows "
                f"{v.hint_cmd}")
    if e.value == v.hint_started:
        return f"the driver started hinting for command id {e.value} twice"
    return None


@_rule("virtio_5_5_6_5_hint_after_command_id", Level.MUST,
       "5.5.6.5 (hints follow the command id on free_page_vq)", ("hint",),
       requires=FREE_PAGE_HINT)
def _hint_after_id(v: View, e: VirtioEvent) -> str | None:
    """The driver hints free pages only after it has sent a command id back to the device."""
    if not _is_cycle(v.hint_started):
        return f"PFN {_some(e.pfns)} hinted before the driver sent any command id"
    return None


@_rule("virtio_5_5_6_5_no_hint_for_old_id", Level.MUST,
       "5.5.6.5 (hints belong to the command id the driver sent last)", ("hint",),
       requires=FREE_PAGE_HINT)
def _no_old_id(v: View, e: VirtioEvent) -> str | None:
    """The driver does not hint pages for a command id older than the one it sent last.

    Once it has started a new cycle, hints of the old one would be taken for the new one's
    and pages written since the old cycle could be skipped by the migration. (Hints of the
    id the driver sent last stay allowed after the device moved on: the device ignores them,
    a race the driver cannot avoid.)"""
    if _is_cycle(v.hint_started) and e.value != v.hint_started:
        return (f"PFN {_some(e.pfns)} hinted for command id {e.value}, but the driver sent "
                f"{v.hint_started} last")
    return None


@_rule("virtio_5_5_6_5_skip_only_unwritten_hints", Level.MUST,
       "5.5.6.5 (the device must not rely on a hint for a page written after it)",
       ("hint_skip",),
       requires=FREE_PAGE_HINT)
def _skip_only_hinted(v: View, e: VirtioEvent) -> str | None:
    """The migration skips only pages hinted in the cycle under way and not taken into use
    since: a page written after its hint, or hinted in an older cycle, must be sent."""
    if not _is_cycle(v.hint_cmd):
        return "pages skipped while no hint cycle is under way"
    bad = [p for p in e.pfns if p not in v.hinted]
    if bad:
        return f"PFN {_some(bad)} skipped but not hinted in this cycle, or written since"
    return None


def _end_only(v: View, e: VirtioEvent) -> str | None:
    """Judged once, at the end of a trace (see :func:`end_warnings`)."""
    return None


SHOULD_REACH_TARGET = "virtio_5_5_6_1_rule1_should_reach_target"
VIRTIO_RULES[SHOULD_REACH_TARGET] = VirtioRule(
    SHOULD_REACH_TARGET, Level.SHOULD, "5.5.6.1 rule 1",
    "The driver supplies pages while num_pages > actual: a target is reached when the guest "
    "has memory to give.\n\nJudged at the end of a trace: a balloon left short of the last "
    "target, though the guest could give pages, is a warning (a SHOULD, not a MUST).",
    (), _end_only)

_BY_KIND: dict[str, list[VirtioRule]] = {}
for _r in VIRTIO_RULES.values():
    for _k in _r.kinds:
        _BY_KIND.setdefault(_k, []).append(_r)


def end_warnings(v: View, *, guest_can_give: bool = True) -> list[tuple[VirtioRule, str]]:
    """The SHOULD rules broken by a trace that ends in profile ``v``.

    ``guest_can_give`` says whether the guest had memory left to give (the model knows;
    a QEMU trace does not show it, so the caller decides).

    >>> end_warnings(VirtioView(4, 4, 1, frozenset({1}), frozenset(), frozenset()))[0][1]
    'the target of 4 pages was never reached: the balloon ends with 1 pages'
    """
    if guest_can_give and len(v.balloon) < v.num_pages and not v.inflating:
        return [(VIRTIO_RULES[SHOULD_REACH_TARGET],
                 f"the target of {v.num_pages} pages was never reached: the balloon ends with "
                 f"{len(v.balloon)} pages")]
    return []
