# mypy: disable-error-code="no-any-return"
"""Where the model's field names meet :class:`~ballast.numeric.arrays.SystemArrays`: the
per-PPN sets and queues as bits of the page flags (:data:`FLAGS`, in each flags type
:func:`flags_as`), the rare entries kept in dictionaries (:data:`EXTRAS`), the per-VM numbers
(:data:`VM_ARRAYS`) and the host's per-MPN sets (:data:`MPN_BITS`). The NumPy interpreter's
stores read and write the arrays through these tables alone.

>>> int(FLAGS["ballooned"]) == int(BALLOONED_BIT)
True
>>> VM_ARRAYS["module.actual"]
'actual'
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ballast.numeric.arrays import (
    ACKED_DEFLATE_BIT, ACKED_INFLATE_BIT, ACKED_REFUSED_BIT, ACKED_REPORT_BIT, BALLOON_BIT,
    BALLOONED_BIT, COW_BIT, DEFLATE_QUEUE_BIT, DISCARDED_BIT, FREE_BIT, HINT_REWRITTEN_BIT,
    HINTED_BIT, IN_USE_BIT, INFLATE_QUEUE_BIT, RECLAIMED_BIT, REFUSED_BIT, REPORT_QUEUE_BIT,
    REPORTING_BIT, STALE_DEFLATE_BIT, STALE_INFLATE_BIT,
)

__all__ = ["EXTRAS", "FLAGS", "MPN_BITS", "VM_ARRAYS", "flags_as"]

FLAGS: dict[str, np.unsignedinteger[Any]] = {
    "ballooned": BALLOONED_BIT, "acked_inflate": ACKED_INFLATE_BIT,
    "acked_refused": ACKED_REFUSED_BIT, "acked_deflate": ACKED_DEFLATE_BIT,
    "module.balloon": BALLOON_BIT, "module.refused": REFUSED_BIT,
    "inflate_queue": INFLATE_QUEUE_BIT, "deflate_queue": DEFLATE_QUEUE_BIT,
    "report_queue": REPORT_QUEUE_BIT, "acked_report": ACKED_REPORT_BIT,
    "discarded": DISCARDED_BIT, "module.reporting": REPORTING_BIT,
    "stale_inflate": STALE_INFLATE_BIT, "stale_deflate": STALE_DEFLATE_BIT,
    "hinted": HINTED_BIT, "hint_rewritten": HINT_REWRITTEN_BIT,
}
"""The model's per-PPN sets and queues -> their bit of :attr:`SystemArrays.page_flags`."""

_FLAGS_AS: dict[Any, dict[str, Any]] = {}
""":data:`FLAGS` in each type the page flags take (:func:`flags_as`)."""


def flags_as(dtype: Any) -> dict[str, Any]:
    """:data:`FLAGS` with each bit in ``dtype``, the type of a configuration's page flags
    (:func:`~ballast.numeric.arrays.page_flag_dtype`): an operation between the flags and
    a bit of a wider type would widen its result, and move twice the bytes.

    >>> flags_as(np.dtype(np.uint8))["ballooned"].dtype.name
    'uint8'
    >>> int(flags_as(np.dtype(np.uint8))["hinted"])  # beyond one byte: a feature's, off
    0
    """
    known = _FLAGS_AS.get(dtype)
    if known is None:
        # A flag beyond the type belongs to a feature the configuration switches off: its
        # set is empty, so its bit is 0 (it reads as empty and clears as nothing; a write
        # that would put a page in it is refused, see VmRows._no_such_flag).
        wide, t = 1 << (8 * np.dtype(dtype).itemsize), np.dtype(dtype).type
        known = _FLAGS_AS[dtype] = {k: t(int(b) if int(b) < wide else 0)
                                    for k, b in FLAGS.items()}
    return known


EXTRAS: dict[str, str] = {"inflate_queue": "inflate_queue_extra",
                          "deflate_queue": "deflate_queue_extra",
                          "acked_refused": "acked_refused_extra",
                          "stale_inflate": "stale_inflate_extra",
                          "stale_deflate": "stale_deflate_extra"}
"""Fields whose rare entries (duplicates, PPNs out of range) live in a dictionary."""

VM_ARRAYS: dict[str, str] = {
    "target": "target", "cpu_target": "cpu_target", "module.target": "module_target",
    "module.cpu_target": "module_cpu_target", "module.actual": "actual",
    "guest.vcpus": "vcpus", "parked_vcpus": "parked_vcpus", "stats_free": "stats_free",
    "hint_cmd_id": "hint_cmd_id", "module.hinting_for": "hinting_for",
    "module.frozen": "frozen", "module.migrating": "migrating",
}
"""The model's per-VM numbers (and vCPU sets, held as bit masks) -> their array."""

MPN_BITS: dict[str, np.uint8] = {"free": FREE_BIT, "in_use": IN_USE_BIT, "cow": COW_BIT,
                                 "reclaimed": RECLAIMED_BIT}
"""The host's per-MPN sets -> their bit of :attr:`SystemArrays.mpn_flags`."""
