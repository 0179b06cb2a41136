"""Sequence diagrams of a trace: who said what to whom, and who chose which page.

Each step of a trace becomes one or more *messages* between lanes: the host, the
VMM, and per VM the guest OS and its balloon module. Requests from the host
carry quantities only (a target); page numbers travel from the guest to the VMM
(inflate and deflate reports) and back as acknowledgements. A message that
names guest pages says whose choice they were: the guest's allocator (inflate),
the guest's replacement policy (its own paging), or the host (the host-swap
fallback, the only host action that picks a guest page).

Messages are derived from the step's action and the states before and after
it, so a faulty variant of an action shows what it really did.

>>> from ballast.model.config import Config
>>> from ballast.model.state import initial_state
>>> from ballast.model.actions import Action, apply
>>> cfg = Config(vms=1, guest_pages=2, machine_pages=2)
>>> s0 = initial_state(cfg)
>>> act = Action.of("host_set_target", vm=0, pages=1)
>>> [str(m) for m in messages(cfg, s0, act, apply(cfg, s0, act))]
['host -> vmm: target of VM 0 = 1 pages (a quantity)']
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Callable, Iterable, Sequence

from ballast.model.actions import ACTIONS, Action, ArgValue, Actor
from ballast.model.config import Config
from ballast.model.state import State, VmState

__all__ = ["MESSAGES", "Lane", "Message", "StepMessages", "actor_lane", "lanes_for", "mermaid",
           "messages", "svg"]

HOST_CHOSE = "host"
"""Chooser mark: the host picked the guest page (host swap)."""
GUEST_ALLOCATOR_CHOSE = "guest allocator"
"""Chooser mark: the guest OS's allocator handed out the pages (inflate)."""
GUEST_CHOSE = "guest"
"""Chooser mark: the guest OS itself picked (its own paging, a vCPU to park)."""
VMM_CHOSE = "VMM"
"""Chooser mark: the VMM took a guest page nobody reported (a protocol break)."""


@dataclass(frozen=True)
class Lane:
    """One vertical line of the diagram: an actor (per VM for guest and module)."""

    key: str
    """``host``, ``vmm``, ``guestN`` or ``moduleN``."""
    title: str


@dataclass(frozen=True)
class Message:
    """One arrow: from lane ``src`` to lane ``dst`` (equal for a local step)."""

    src: str
    dst: str
    label: str
    chooser: str | None = None
    """Who chose the guest pages this message names, if it names any."""

    def __str__(self) -> str:
        chose = f" [chosen by {self.chooser}]" if self.chooser else ""
        return f"{self.src} -> {self.dst}: {self.label}{chose}"

    def to_dict(self) -> dict[str, str | None]:
        return {"from": self.src, "to": self.dst, "label": self.label, "chosen_by": self.chooser}


@dataclass(frozen=True)
class StepMessages:
    """The messages of one trace step, with how the step is to be drawn."""

    step: int
    messages: tuple[Message, ...]
    failing: bool = False
    in_cycle: bool = False
    note: str | None = None
    """Shown beside the failing step: what broke."""


def actor_lane(actor: Actor, vm: int | None) -> str:
    """The lane an actor's own steps start from (a hostile guest uses its guest OS lane).

    >>> actor_lane(Actor.MODULE, 1)
    'module1'
    """
    if actor is Actor.HOST:
        return "host"
    if actor is Actor.VMM:
        return "vmm"
    if actor is Actor.MODULE:
        return f"module{vm if vm is not None else 0}"
    return f"guest{vm if vm is not None else 0}"


def lanes_for(cfg: Config, vms: Sequence[int] | None = None) -> list[Lane]:
    """Lanes for the host, the VMM and the given VMs (default: every VM).

    >>> [lane.key for lane in lanes_for(Config(vms=1, guest_pages=2, machine_pages=2))]
    ['host', 'vmm', 'guest0', 'module0']
    """
    out = [Lane("host", "Host"), Lane("vmm", "VMM")]
    for v in (range(cfg.vms) if vms is None else vms):
        out += [Lane(f"guest{v}", f"VM {v} guest OS"), Lane(f"module{v}", f"VM {v} balloon module")]
    return out


def _pages(ppns: Iterable[int]) -> str:
    items = sorted(ppns)
    return "PPN " + str(items[0]) if len(items) == 1 else "PPNs " + str(items)


def _ints(act: Action, key: str) -> tuple[int, ...]:
    value = act.kwargs.get(key)
    if isinstance(value, tuple):
        return value
    return (value,) if isinstance(value, int) else ()


def _int(act: Action, key: str) -> int:
    value = act.kwargs.get(key)
    return value if isinstance(value, int) else -1


def _freed(pre: State, post: State) -> list[int]:
    return sorted(post.host.free - pre.host.free)


@dataclass(frozen=True)
class _Step:
    """One step as the message rules read it: the step, its VM and that VM's lanes."""

    cfg: Config
    pre: State
    act: Action
    post: State
    k: dict[str, ArgValue]
    """The action's arguments."""
    v: int
    """The VM the step names (0 when it names none)."""
    a: VmState | None
    """That VM before the step (None if the step names a VM that does not exist)."""
    b: VmState | None
    """That VM after the step."""

    @property
    def g(self) -> str:
        return f"guest{self.v}"

    @property
    def m(self) -> str:
        return f"module{self.v}"


MessageRule = Callable[[_Step], list[Message]]
"""How one action's step is drawn; an empty list falls back to a plain arrow."""

MESSAGES: dict[str, MessageRule] = {}
"""The arrows of each action's step, by the model's action name. An action without an
entry is drawn as a plain arrow on its actor's lane (the registry's completeness test
names it)."""


def _says(*names: str) -> Callable[[MessageRule], MessageRule]:
    def register(fn: MessageRule) -> MessageRule:
        for name in names:
            MESSAGES[name] = fn
        return fn
    return register


def messages(cfg: Config, pre: State, act: Action, post: State) -> list[Message]:
    """The arrows that show one step ``pre --act--> post``."""
    k = act.kwargs
    vm = k.get("vm")
    v = vm if isinstance(vm, int) else 0
    a = pre.vms[v] if 0 <= v < len(pre.vms) else None
    b = post.vms[v] if 0 <= v < len(post.vms) else None
    rule = MESSAGES.get(act.name)
    out = rule(_Step(cfg, pre, act, post, k, v, a, b)) if rule is not None else []
    if not out:
        spec = ACTIONS.get(act.name)
        lane = actor_lane(spec.actor, v) if spec else "vmm"
        out.append(Message(lane, lane, str(act)))
    return out


@_says("host_set_target")
def _set_target(s: _Step) -> list[Message]:
    return [Message("host", "vmm", f"target of VM {s.v} = {s.k['pages']} pages (a quantity)")]


@_says("host_set_cpu_target")
def _set_cpu_target(s: _Step) -> list[Message]:
    return [Message("host", "vmm", f"vCPU target of VM {s.v} = {s.k['vcpus']} (a quantity)")]


@_says("host_take_page", "host_return_page")
def _host_page(s: _Step) -> list[Message]:
    pre, post = s.pre, s.post
    took = sorted(pre.host.free - post.host.free) or sorted(post.host.in_use - pre.host.in_use)
    back = sorted(post.host.free - pre.host.free)
    what = f"takes host page {s.k['host_page']} (MPNs {took})" if s.act.name == "host_take_page" \
        else f"returns host page {s.k['host_page']} (MPNs {back})"
    return [Message("host", "host", what)]


@_says("host_swap_out")
def _swap_out(s: _Step) -> list[Message]:
    return [Message("host", "vmm", f"swap out VM {s.v} {_pages(_ints(s.act, 'ppn'))} to host swap",
                    HOST_CHOSE)]


@_says("vmm_reclaim")
def _reclaim(s: _Step) -> list[Message]:
    a, b, m = s.a, s.b, s.m
    if a is None or b is None:
        return []
    accepted = b.ballooned - a.ballooned
    refused = b.acked_refused - a.acked_refused
    text = f"ack inflate {_pages(accepted)}" if accepted else "ack inflate (none accepted)"
    if refused:
        text += f", refuse {_pages(refused)}"
    out = [Message("vmm", m, text)]
    unreported = accepted - set(a.inflate_queue)
    if unreported:
        out.append(Message("vmm", "vmm", f"also balloons {_pages(unreported)} of VM {s.v}, "
                           "never reported", VMM_CHOSE))
    freed = _freed(s.pre, s.post)
    if freed:
        out.append(Message("vmm", "host", f"MPNs {freed} back to the free pool"))
    return out


@_says("vmm_release")
def _release(s: _Step) -> list[Message]:
    a, b = s.a, s.b
    if a is None or b is None:
        return []
    return [Message("vmm", s.m, f"ack deflate {_pages(b.acked_deflate - a.acked_deflate)}"
                    if b.acked_deflate - a.acked_deflate else "ack deflate")]


@_says("vmm_back_page")
def _back_page(s: _Step) -> list[Message]:
    a, b = s.a, s.b
    if a is None or b is None:
        return []
    ppn = _int(s.act, "ppn")
    return [Message("vmm", "vmm", f"backs VM {s.v} PPN {ppn} with MPN {b.p2m[ppn]} "
                    "before the guest touches it")]


@_says("vmm_share")
def _share(s: _Step) -> list[Message]:
    k = s.k
    out = [Message("vmm", "vmm", f"share VM {s.v} PPN {k['ppn']} with VM {k['other_vm']} "
                   f"PPN {k['other_ppn']} (copy-on-write)")]
    freed = _freed(s.pre, s.post)
    if freed:
        out.append(Message("vmm", "host", f"MPNs {freed} back to the free pool"))
    return out


@_says("vmm_cpu_reclaim")
def _cpu_reclaim(s: _Step) -> list[Message]:
    n = s.post.host.idle_pcpus - s.pre.host.idle_pcpus
    return [Message("vmm", "host", f"{n} parked processor(s) of VM {s.v} back")]


@_says("guest_read")
def _read(s: _Step) -> list[Message]:
    return [Message(s.g, s.g, f"reads VPN {s.k['vpn']}")]


@_says("guest_write")
def _write(s: _Step) -> list[Message]:
    return [Message(s.g, s.g, f"writes VPN {s.k['vpn']} := {s.k['token']}")]


@_says("guest_evict")
def _evict(s: _Step) -> list[Message]:
    return [Message(s.g, s.g, f"pages VPN {s.k['vpn']} out to its own disk", GUEST_CHOSE)]


@_says("guest_reset")
def _reset(s: _Step) -> list[Message]:
    return [Message(s.g, "vmm", "reboots: the balloon device is reset")]


@_says("balloon_poll")
def _poll(s: _Step) -> list[Message]:
    b = s.b
    if b is None:
        return []
    return [Message("vmm", s.m, f"poll: target {b.module.target} pages"
                    + (f", {b.module.cpu_target} vCPUs" if s.cfg.processors else ""))]


@_says("balloon_inflate")
def _inflate(s: _Step) -> list[Message]:
    ppns = _ints(s.act, "ppns")
    return [Message(s.g, s.m, f"allocator gives {_pages(ppns)}", GUEST_ALLOCATOR_CHOSE),
            Message(s.m, "vmm", f"inflate {_pages(ppns)}")]


@_says("balloon_deflate")
def _deflate(s: _Step) -> list[Message]:
    return [Message(s.m, "vmm", f"deflate {_pages(_ints(s.act, 'ppns'))}")]


@_says("balloon_complete")
def _complete(s: _Step) -> list[Message]:
    b = s.b
    if b is None:
        return []
    return [Message(s.m, "vmm", f"takes acks; actual = {b.module.actual}")]


@_says("balloon_free_refused")
def _free_refused(s: _Step) -> list[Message]:
    a = s.a
    if a is None:
        return []
    return [Message(s.m, s.g, f"frees refused {_pages(a.module.refused)}")]


@_says("balloon_cpu_offline")
def _cpu_offline(s: _Step) -> list[Message]:
    return [Message(s.m, "vmm", f"parks vCPU {s.k['vcpu']}", GUEST_CHOSE)]


@_says("balloon_cpu_online")
def _cpu_online(s: _Step) -> list[Message]:
    return [Message(s.m, "vmm", f"brings vCPU {s.k['vcpu']} online")]


@_says("balloon_migrate")
def _migrate(s: _Step) -> list[Message]:
    new = s.k["new"]
    return [Message(s.g, s.m, f"compaction gives PPN {new} for a balloon page",
                    GUEST_ALLOCATOR_CHOSE),
            Message(s.m, "vmm", f"inflate PPN {new} (migration)")]


@_says("balloon_migrate_release")
def _migrate_release(s: _Step) -> list[Message]:
    return [Message(s.m, "vmm", f"deflate PPN {s.k['old']} (migrated away)")]


@_says("balloon_oom_deflate")
def _oom_deflate(s: _Step) -> list[Message]:
    return [Message(s.m, "vmm", f"out of memory: deflate {_pages(_ints(s.act, 'ppns'))}")]


@_says("rogue_report")
def _rogue_report(s: _Step) -> list[Message]:
    return [Message(s.g, "vmm", f"hostile {s.k['queue']} report of PPN {s.k['ppn']}")]


@_says("rogue_touch")
def _rogue_touch(s: _Step) -> list[Message]:
    popped = s.a is not None and _int(s.act, "ppn") in s.a.ballooned
    return [Message(s.g, "vmm", f"hostile touch of PPN {s.k['ppn']}"
                    + (" (pops the balloon)" if popped else ""))]


@_says("rogue_set_actual")
def _rogue_actual(s: _Step) -> list[Message]:
    return [Message(s.g, "vmm", f"hostile actual = {s.k['actual']}")]


@_says("rogue_cpu_park")
def _rogue_park(s: _Step) -> list[Message]:
    return [Message(s.g, "vmm", f"hostile report: vCPU {s.k['vcpu']} parked (the VMM stops it)")]


@_says("rogue_cpu_online")
def _rogue_online(s: _Step) -> list[Message]:
    return [Message(s.g, "vmm", f"hostile: vCPU {s.k['vcpu']} online")]


@_says("vmm_drop_stale_reports")
def _drop_stale(s: _Step) -> list[Message]:
    return [Message("vmm", "vmm", f"drops VM {s.v}'s reports from before its reset")]


@_says("vmm_enforce_cpu_target")
def _enforce_cpus(s: _Step) -> list[Message]:
    n = s.post.host.idle_pcpus - s.pre.host.idle_pcpus
    return [Message("vmm", "host", f"stops {n} vCPU(s) of VM {s.v} beyond its CPU target")]


@_says("vmm_swap_over_target")
def _swap_over_target(s: _Step) -> list[Message]:
    return [Message("vmm", "host", f"swap out VM {s.v} {_pages(_ints(s.act, 'ppn'))} to host "
                    "swap: it holds more than its target allows", HOST_CHOSE)]


# --------------------------------------------------------------------------
# Drawing

_LANE_W = 170
_LEFT = 56
_TOP = 58
_ROW = 30
_COLOURS = {"host": "#1f5fbf", "vmm": "#6a1b9a", "guest": "#2e7d32", "module": "#2e7d32"}
_CHOOSER = "#b45309"


def _colour(lane: str) -> str:
    return _COLOURS.get(lane.rstrip("0123456789"), "#444444")


def svg(lanes: Sequence[Lane], steps: Sequence[StepMessages]) -> str:
    """An inline SVG sequence diagram (no scripts, no external references).

    The failing step's rows are shaded red, a lasso's cycle blue.
    """
    x = {lane.key: _LEFT + _LANE_W // 2 + i * _LANE_W for i, lane in enumerate(lanes)}
    rows = sum(max(1, len(s.messages)) + (1 if s.note else 0) for s in steps)
    # Room on the right for the labels of local steps on the last lanes.
    width = _LEFT + _LANE_W * len(lanes) + 240
    height = _TOP + rows * _ROW + 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="sequence" role="img" '
           f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           f'font-family="sans-serif" font-size="12">',
           "<title>Sequence diagram of the trace</title>",
           '<defs><marker id="arrowhead" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
           'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
           'fill="context-stroke"/></marker></defs>']
    y = _TOP
    bands: list[str] = []
    body: list[str] = []
    for s in steps:
        n = max(1, len(s.messages)) + (1 if s.note else 0)
        if s.failing or s.in_cycle:
            fill = "#fde2e2" if s.failing else "#e3ecfb"
            cls = "failing" if s.failing else "cycle"
            bands.append(f'<rect class="{cls}" x="2" y="{y}" width="{width - 4}" '
                         f'height="{n * _ROW}" fill="{fill}" rx="4"/>')
        body.append(f'<text x="8" y="{y + 19}" font-weight="bold" fill="#333">{s.step}</text>')
        for i, msg in enumerate(s.messages):
            yy = y + i * _ROW + 20
            col = _colour(msg.src)
            label = escape(msg.label)
            chose = (f'<tspan fill="{_CHOOSER}" font-weight="bold"> \u25c6 chosen by '
                     f'{escape(msg.chooser)}</tspan>' if msg.chooser else "")
            x1, x2 = x.get(msg.src, _LEFT), x.get(msg.dst, _LEFT)
            if x1 == x2:
                body.append(f'<path d="M{x1},{yy - 6} h28 v12 h-26" fill="none" stroke="{col}" '
                            f'stroke-width="1.6" marker-end="url(#arrowhead)"/>')
                body.append(f'<text x="{x1 + 34}" y="{yy + 4}" fill="{col}">{label}{chose}</text>')
            else:
                body.append(f'<line x1="{x1}" y1="{yy}" x2="{x2 - 3 if x2 > x1 else x2 + 3}" '
                            f'y2="{yy}" stroke="{col}" stroke-width="1.6" '
                            f'marker-end="url(#arrowhead)"/>')
                body.append(f'<text x="{(x1 + x2) // 2}" y="{yy - 5}" text-anchor="middle" '
                            f'fill="{col}">{label}{chose}</text>')
        if s.note:
            yy = y + max(1, len(s.messages)) * _ROW + 19
            body.append(f'<text x="{_LEFT}" y="{yy}" fill="#b00020" font-weight="bold">'
                        f'\u2716 {escape(s.note)}</text>')
        y += n * _ROW
    heads: list[str] = []
    for lane in lanes:
        cx = x[lane.key]
        heads.append(f'<line x1="{cx}" y1="{_TOP - 8}" x2="{cx}" y2="{height - 10}" '
                     f'stroke="#9aa0a6" stroke-dasharray="4 3"/>')
        heads.append(f'<rect x="{cx - _LANE_W // 2 + 6}" y="8" width="{_LANE_W - 12}" height="36" '
                     f'rx="6" fill="#f1f3f4" stroke="{_colour(lane.key)}"/>')
        heads.append(f'<text x="{cx}" y="31" text-anchor="middle" font-weight="bold" '
                     f'fill="{_colour(lane.key)}">{escape(lane.title)}</text>')
    out += bands + heads + body + ["</svg>"]
    return "\n".join(out)


def _mm(text: str) -> str:
    # Mermaid ends a statement at ';' and reads '#' as an entity code.
    return text.replace(";", ",").replace("#", "no. ")


def mermaid(lanes: Sequence[Lane], steps: Sequence[StepMessages]) -> str:
    """The same diagram as a Mermaid ``sequenceDiagram`` (rendered by GitHub's Markdown).

    >>> print(mermaid([Lane("host", "Host"), Lane("vmm", "VMM")],
    ...               [StepMessages(1, (Message("host", "vmm", "target 2"),))]))
    sequenceDiagram
        participant host as Host
        participant vmm as VMM
        host->>vmm: 1. target 2
    """
    out = ["sequenceDiagram"]
    out += [f"    participant {lane.key} as {_mm(lane.title)}" for lane in lanes]
    in_cycle = False
    for s in steps:
        if s.in_cycle and not in_cycle:
            out.append("    rect rgb(227, 236, 251)")
            out.append(f"    Note over {lanes[0].key},{lanes[-1].key}: cycle starts")
        if in_cycle and not s.in_cycle:
            out.append("    end")
        in_cycle = s.in_cycle
        for i, msg in enumerate(s.messages):
            label = _mm(msg.label) + (f" [chosen by {msg.chooser}]" if msg.chooser else "")
            out.append(f"    {msg.src}->>{msg.dst}: {s.step}. {label}" if i == 0
                       else f"    {msg.src}->>{msg.dst}: {label}")
        if s.note:
            last = s.messages[-1].dst if s.messages else lanes[0].key
            out.append(f"    Note over {last}: FAILS HERE - {_mm(s.note)}")
    if in_cycle:
        out.append("    end")
    return "\n".join(out)


@_says("balloon_report_free_pages")
def _report_free(s: _Step) -> list[Message]:
    ppns = _ints(s.act, "ppns")
    return [Message(s.g, s.m, f"free list gives {_pages(ppns)}", GUEST_ALLOCATOR_CHOSE),
            Message(s.m, "vmm", f"report free {_pages(ppns)}")]


@_says("vmm_discard_reported")
def _discard_reported(s: _Step) -> list[Message]:
    a, b = s.a, s.b
    if a is None or b is None:
        return []
    out = [Message("vmm", s.m, f"discards {_pages(b.discarded - a.discarded)}, returns the report")]
    freed = _freed(s.pre, s.post)
    if freed:
        out.append(Message("vmm", "host", f"MPNs {freed} back to the free pool"))
    return out


@_says("balloon_report_done")
def _report_done(s: _Step) -> list[Message]:
    a = s.a
    if a is None:
        return []
    return [Message(s.m, s.g, f"reported {_pages(a.acked_report)} back on the free list")]


@_says("balloon_report_stats")
def _report_stats(s: _Step) -> list[Message]:
    b = s.b
    if b is None:
        return []
    return [Message(s.m, "vmm", f"statistics: {b.stats_free} pages free")]


@_says("vmm_request_hints")
def _request_hints(s: _Step) -> list[Message]:
    b = s.b
    if b is None:
        return []
    return [Message("vmm", s.m, f"free page hint cycle, command id {b.hint_cmd_id}")]


@_says("vmm_stop_hints")
def _stop_hints(s: _Step) -> list[Message]:
    return [Message("vmm", s.m, f"free page hints: {str(s.k['command']).upper()}")]


@_says("balloon_hint_start")
def _hint_start(s: _Step) -> list[Message]:
    b = s.b
    if b is None:
        return []
    return [Message(s.m, "vmm", f"start hinting for command id {b.module.hinting_for}")]


@_says("balloon_hint_free_pages")
def _hint_free(s: _Step) -> list[Message]:
    a = s.a
    ppns = _ints(s.act, "ppns")
    if a is None:
        return []
    stale = a.module.hinting_for != a.hint_cmd_id
    return [Message(s.m, "vmm", f"hint free {_pages(ppns)} (id {a.module.hinting_for})"
                    + (", ignored: an old cycle" if stale else ""))]


@_says("vmm_skip_hinted")
def _skip_hinted(s: _Step) -> list[Message]:
    a = s.a
    if a is None:
        return []
    out = [Message("vmm", "host", f"migration skips hinted {_pages(sorted(a.hinted))}")]
    freed = _freed(s.pre, s.post)
    if freed:
        out.append(Message("vmm", "host", f"MPNs {freed} back to the free pool"))
    return out


@_says("balloon_freeze")
def _freeze(s: _Step) -> list[Message]:
    return [Message(s.g, s.m, "hibernate: the driver freezes")]


@_says("balloon_restore")
def _restore(s: _Step) -> list[Message]:
    b = s.b
    if b is None:
        return []
    return [Message(s.g, s.m, "resume: the driver is restored"),
            Message(s.m, "vmm", f"actual = {b.module.actual}")]
