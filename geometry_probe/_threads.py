"""Keep small dense NumPy linear algebra on one BLAS thread.

On a machine shared with torch's OpenMP threads (and with other processes), a multithreaded
BLAS woken for millisecond-sized products and eigensolves competes for the same cores: the
diagnosis' small eigensolves took 1-8 s under load instead of 0.15 s. Everything that runs
such work (the verdicts, the training monitor's snapshots) runs inside :func:`one_blas_thread`.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from threadpoolctl import ThreadpoolController


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run NumPy's BLAS on one thread while the block lasts, then restore the thread counts.

    Sets and restores the thread count of the loaded BLAS libraries directly (a few
    microseconds; threadpoolctl's ``limit`` re-reads every library's info, 10 us warm and 70 us
    with the caches cold inside a training loop). While it lasts, other threads' NumPy BLAS
    calls run on one thread too. Usable as a decorator (``@one_blas_thread()``).
    """
    changed = [(library, threads) for library in _blas_libraries() if (threads := library.get_num_threads()) != 1]
    for library, _ in changed:
        library.set_num_threads(1)
    try:
        yield
    finally:
        for library, threads in changed:
            library.set_num_threads(threads)


def _blas_libraries() -> list[Any]:
    """threadpoolctl's controllers of the BLAS libraries loaded now (~15 ms to find), found again only after
    new modules were imported (a new extension module may bring its own BLAS, e.g. SciPy's or faiss's)."""
    modules = len(sys.modules)
    if _FOUND.get("modules") != modules:
        _FOUND.update(modules=modules, libraries=ThreadpoolController().select(user_api="blas").lib_controllers)
    return _FOUND["libraries"]


_FOUND: dict[str, Any] = {}
