"""Compact encoding of a model :class:`~ballast.model.state.State` as a short ``bytes``.

The explorer keeps millions of states, so each one is stored as a packed
array of small integers (one byte each when the configuration is small
enough, two or four otherwise) instead of a tree of frozen objects. Every
per-page set of the host (free, in host use, copy-on-write, reclaimed) and of a
VM (ballooned, acknowledged, in the module's balloon, refused) becomes one flag
word per page, so the layout has a fixed part per MPN and per PPN and a few
length-prefixed parts (queues, LRU order, swap contents).

``decode(encode(s)) == s`` for every state of the model; the tests check this
on every reachable state of several configurations.

>>> from ballast.model.config import Config
>>> from ballast.model.state import initial_state
>>> cfg = Config(vms=1, guest_pages=2, machine_pages=2)
>>> codec = StateCodec(cfg)
>>> s = initial_state(cfg)
>>> len(codec.encode(s))
27
>>> codec.decode(codec.encode(s)) == s
True
"""

from __future__ import annotations

from array import array
from typing import Iterable

from ballast.model.config import Config
from ballast.model.state import BalloonModule, GuestState, HostState, State, VmState

__all__ = ["StateCodec"]

# Host flags per MPN.
_FREE, _IN_USE, _COW, _RECLAIMED = 1, 2, 4, 8
# VM flags per PPN slot (one slot past the last PPN: a hostile guest reports it).
_BALLOONED, _ACK_INF, _ACK_REF, _ACK_DEF, _MOD_BALLOON, _MOD_REFUSED = 1, 2, 4, 8, 16, 32


def _bits(items: Iterable[int]) -> int:
    out = 0
    for i in items:
        out |= 1 << i
    return out


def _unbits(word: int) -> frozenset[int]:
    return frozenset(i for i in range(word.bit_length()) if word >> i & 1)


class StateCodec:
    """Packs the states of one configuration into ``bytes`` and back."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.machine_pages = cfg.machine_pages
        self.guest_pages = cfg.guest_pages
        self.slots = cfg.guest_pages + 1
        # The largest magnitude any field may take decides the integer width.
        bound = max(cfg.machine_pages, cfg.guest_pages + 2, cfg.guest_data_pages,
                    cfg.tokens + 1, 64, cfg.pcpus, 1 << max(cfg.vcpus, 1),
                    2 * cfg.batch + cfg.guest_pages + 2, cfg.host_swap_slots * 3 + 1,
                    cfg.guest_disk_slots * 2 + 1)
        self.typecode = "b" if bound < 128 else "h" if bound < 32768 else "i"

    @property
    def width(self) -> int:
        """Bytes per packed integer."""
        return array(self.typecode).itemsize

    def encode(self, s: State) -> bytes:
        """The packed form of ``s``."""
        h = s.host
        out: list[int] = []
        free, in_use, cow, rec = h.free, h.in_use, h.cow, h.reclaimed
        for m in range(self.machine_pages):
            out.append((_FREE if m in free else 0) | (_IN_USE if m in in_use else 0)
                       | (_COW if m in cow else 0) | (_RECLAIMED if m in rec else 0))
        out.extend(h.content)
        out.append(h.idle_pcpus)
        out.append(len(h.swap))
        for entry in h.swap:
            out.extend(entry)
        for v in s.vms:
            g, mod = v.guest, v.module
            out.extend(v.p2m)
            for p in range(self.slots):
                out.append((_BALLOONED if p in v.ballooned else 0)
                           | (_ACK_INF if p in v.acked_inflate else 0)
                           | (_ACK_REF if p in v.acked_refused else 0)
                           | (_ACK_DEF if p in v.acked_deflate else 0)
                           | (_MOD_BALLOON if p in mod.balloon else 0)
                           | (_MOD_REFUSED if p in mod.refused else 0))
            out.append(v.target)
            out.append(v.cpu_target)
            out.append(_bits(v.parked_vcpus))
            out.append(len(v.inflate_queue))
            out.extend(v.inflate_queue)
            out.append(len(v.deflate_queue))
            out.extend(v.deflate_queue)
            out.extend(g.ppn_use)
            out.append(len(g.lru))
            out.extend(g.lru)
            out.extend(g.expected)
            out.append(len(g.disk))
            for pair in g.disk:
                out.extend(pair)
            out.append(_bits(g.vcpus))
            out.append(mod.target)
            out.append(mod.actual)
            out.append(mod.cpu_target)
        return array(self.typecode, out).tobytes()

    def decode(self, data: bytes) -> State:
        """The state packed in ``data``."""
        a = array(self.typecode)
        a.frombytes(data)
        x = a.tolist()
        mp, gp = self.machine_pages, self.guest_pages
        flags = x[:mp]
        content = tuple(x[mp:2 * mp])
        i = 2 * mp
        idle = x[i]
        n = x[i + 1]
        i += 2
        swap = tuple((x[i + 3 * k], x[i + 3 * k + 1], x[i + 3 * k + 2]) for k in range(n))
        i += 3 * n
        host = HostState(
            free=frozenset(m for m in range(mp) if flags[m] & _FREE),
            in_use=frozenset(m for m in range(mp) if flags[m] & _IN_USE),
            content=content,
            cow=frozenset(m for m in range(mp) if flags[m] & _COW),
            reclaimed=frozenset(m for m in range(mp) if flags[m] & _RECLAIMED),
            swap=swap,
            idle_pcpus=idle)
        vms = []
        data_pages = self.cfg.guest_data_pages
        for _ in range(self.cfg.vms):
            p2m = tuple(x[i:i + gp])
            i += gp
            pf = x[i:i + self.slots]
            i += self.slots
            target, cpu_target, parked = x[i], x[i + 1], x[i + 2]
            i += 3
            n = x[i]
            inflate_queue = tuple(x[i + 1:i + 1 + n])
            i += 1 + n
            n = x[i]
            deflate_queue = tuple(x[i + 1:i + 1 + n])
            i += 1 + n
            ppn_use = tuple(x[i:i + gp])
            i += gp
            n = x[i]
            lru = tuple(x[i + 1:i + 1 + n])
            i += 1 + n
            expected = tuple(x[i:i + data_pages])
            i += data_pages
            n = x[i]
            disk = tuple((x[i + 1 + 2 * k], x[i + 2 + 2 * k]) for k in range(n))
            i += 1 + 2 * n
            vcpus = _unbits(x[i])
            mod_target, actual, mod_cpu = x[i + 1], x[i + 2], x[i + 3]
            i += 4

            def sel(bit: int) -> frozenset[int]:
                return frozenset(p for p, f in enumerate(pf) if f & bit)

            guest = GuestState(ppn_use=ppn_use, lru=lru, expected=expected, disk=disk,
                               vcpus=vcpus)
            module = BalloonModule(target=mod_target, balloon=sel(_MOD_BALLOON),
                                   refused=sel(_MOD_REFUSED), actual=actual,
                                   cpu_target=mod_cpu)
            vms.append(VmState(p2m=p2m, ballooned=sel(_BALLOONED), target=target,
                               cpu_target=cpu_target, inflate_queue=inflate_queue,
                               deflate_queue=deflate_queue, acked_inflate=sel(_ACK_INF),
                               acked_refused=sel(_ACK_REF), acked_deflate=sel(_ACK_DEF),
                               parked_vcpus=_unbits(parked), guest=guest, module=module))
        return State(host, tuple(vms))
