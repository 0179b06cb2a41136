"""The linear algebra library's threads, held to one where its products are small.

The frontier explorer packs rows into keys and numbers the parts of states with matrix
products (``rows @ places``): a few columns of hundreds of thousands of rows at a time.
NumPy's BLAS runs such a product on every core it finds; for products this narrow the
threads add no speed (the same wall time) and half again the CPU time, which a loaded
machine, or a benchmark that counts CPU seconds, pays for. :func:`one_blas_thread` holds
the library to one thread for a block (``threadpoolctl``, which finds whichever BLAS NumPy
loaded) and gives back the setting it found on leaving.

>>> import numpy as np
>>> with one_blas_thread():
...     int((np.ones((3, 2)) @ np.ones(2)).sum())
6
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from threadpoolctl import threadpool_limits

__all__ = ["one_blas_thread"]


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Inside the block, BLAS products run on one thread; the earlier setting after it."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield
