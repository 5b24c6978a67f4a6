"""Thread settings that must be made before numpy (and its BLAS) is first imported.

numpy's OpenBLAS starts one thread per core when numpy is imported, and those threads
spin after each call. The frs parent only does small vector searches, and the workers
run one per core, so one BLAS thread per process is right (measured: the parent's
start-up CPU 0.36 s -> 0.24 s on the Hamilton clip). Kept apart from the entry point
so that the library can use it without importing the command line.
"""

from __future__ import annotations

import os

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def one_blas_thread() -> None:
    for var in THREAD_VARS:
        os.environ.setdefault(var, "1")
