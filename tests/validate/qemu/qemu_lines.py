"""Small QEMU virtio-balloon trace logs written by program, for tests."""

from __future__ import annotations

PAGE = 4096
VDEV = "0x5500"
INFLATEQ, DEFLATEQ = "0x7f10", "0x7f20"
QUEUE_VQ = {0: INFLATEQ, 1: DEFLATEQ, 2: "0x7f30", 3: "0x7f40", 4: "0x7f50"}
RAM_AT = 0x7F00_0000_0000
"""Where QEMU keeps guest-physical address 0 in these logs' discard lines."""


class QemuLog:
    """Builds the lines QEMU 7.2 writes for a Linux guest's balloon (``TID@SEC:`` prefix)."""

    def __init__(self, guest_pages: int) -> None:
        self.guest_pages = guest_pages
        self.lines: list[str] = []
        self.t = 100.0

    def _add(self, text: str, tid: int = 8) -> None:
        self.t += 0.0001
        self.lines.append(f"{tid}@{self.t:.6f}:{text}")

    def target(self, num_pages: int) -> "QemuLog":
        target = (self.guest_pages - num_pages) * PAGE
        self._add(f"virtio_balloon_to_target balloon target: {target:#x} num_pages: {num_pages}", 7)
        return self

    def read(self, num_pages: int, actual: int) -> "QemuLog":
        self._add(f"virtio_balloon_get_config num_pages: {num_pages} actual: {actual}")
        return self

    def write(self, actual: int, old: int) -> "QemuLog":
        self._add(f"virtio_balloon_set_config actual: {actual} oldactual: {old}")
        return self

    def buffer(self, queue: int, pfns: list[int], ack: bool = True,
               discards: dict[int, int] | None = None, kicked: bool = True) -> "QemuLog":
        """A buffer of ``pfns`` on ``queue``; ``discards`` maps a page to the bytes QEMU
        gives back after reading it (the host page holding it), or, with no pages, the
        first page of each range given back (a free page report).  ``kicked`` False: the
        device reads it in the same notification as the buffer before."""
        vq = QUEUE_VQ[queue]
        if kicked:
            self._add(f"virtio_queue_notify vdev {VDEV} n {queue} vq {vq}")
        for p in pfns:
            self._add(f"virtio_balloon_handle_output section name: pc.ram gpa: {p * PAGE:#x}")
            if discards and p in discards:
                start = p * PAGE // discards[p] * discards[p]
                self.discard(start // PAGE, discards[p])
        if discards and not pfns:
            for p, length in discards.items():
                self.discard(p, length)
        if ack:
            self._add(f"virtio_notify vdev {VDEV} vq {vq}")
        return self

    def linux_inflate(self, pfns: list[int], batch: int, discards: dict[int, int] | None = None
                      ) -> "QemuLog":
        """A Linux driver inflating ``pfns`` to a target of their number: read, a buffer of
        at most ``batch``, write ``actual``, repeat; ``discards`` as for :meth:`buffer`."""
        num = len(pfns)
        self.target(num)
        for i in range(0, num, batch):
            self.read(num, i)
            self.inflate(pfns[i:i + batch], discards=discards)
            self.write(min(i + batch, num), i)
        self.read(num, num)
        return self

    def discard(self, first_pfn: int, length: int) -> "QemuLog":
        """QEMU gives ``length`` bytes of guest RAM from page ``first_pfn`` back to the host."""
        self._add(f"ram_block_discard_range pc.ram@{RAM_AT + first_pfn * PAGE:#x} + {length:#x}: "
                  "madvise: 1 fallocate: 0 ret: 0")
        return self

    def notify(self, queue: int) -> "QemuLog":
        """The device's notification that ends an earlier buffer of ``queue`` (0 inflateq, 1
        deflateq) that was written with ``ack=False``."""
        self._add(f"virtio_notify vdev {VDEV} vq {INFLATEQ if queue == 0 else DEFLATEQ}")
        return self

    def inflate(self, pfns: list[int], ack: bool = True, discards: dict[int, int] | None = None,
                kicked: bool = True) -> "QemuLog":
        return self.buffer(0, pfns, ack, discards, kicked)

    def deflate(self, pfns: list[int], ack: bool = True) -> "QemuLog":
        return self.buffer(1, pfns, ack)

    def linux_run(self, targets: list[int], first: int = 16, batch: int = 4) -> "QemuLog":
        """What a Linux guest does for each target: read, a buffer, write actual, repeat."""
        balloon: list[int] = []
        free = list(range(first, self.guest_pages))
        for num in targets:
            self.target(num)
            while True:
                self.read(num, len(balloon))
                if len(balloon) < num:
                    take = [free.pop(0) for _ in range(min(batch, num - len(balloon)))]
                    self.inflate(take)
                    balloon += take
                elif len(balloon) > num:
                    give = balloon[:min(batch, len(balloon) - num)]
                    self.deflate(give)
                    balloon = balloon[len(give):]
                    free = give + free
                else:
                    break
                self.write(len(balloon), 0)
        return self
