"""The C allocator tuned for training and scoring on CPU: large blocks are kept for reuse instead of being returned
to the system at every free.

A CPU pass allocates and frees (batch, channels, length) tensors of tens of megabytes at every step. glibc's malloc
serves blocks above its mmap threshold (128 kB, raised on the fly to at most 32 MB) with fresh pages from the
kernel, each one zeroed and faulted in on first touch, and trims the heap top as soon as it is freed: at 20,000 bases
a training step of the default DNAPerceiver took 1.6 times as long as with the blocks kept (benchmarks/RESULTS.md,
"Fresh memory"). Raising the mmap threshold to 1 GiB and the trim threshold to 2 GiB keeps those blocks in the heap,
so the next step reuses them. Numbers are unchanged (the same operations on the same values); the process keeps up
to its peak of freed memory instead of returning it.

`expression-perceiver` and `train.py` call `keep_freed_memory()` at start; Python users may call it themselves.
Set EXPRESSION_PERCEIVER_KEEP_FREED_MEMORY=0 to leave the allocator as it is; MALLOC_MMAP_THRESHOLD_ or
MALLOC_TRIM_THRESHOLD_ in the environment (glibc's own settings) are respected as set.
"""

import ctypes
import os
import sys

# mallopt's parameters (malloc.h) and the values set: both must fit a C int.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 1 << 30
TRIM_THRESHOLD = (1 << 31) - 1
SWITCH = "EXPRESSION_PERCEIVER_KEEP_FREED_MEMORY"
GLIBC_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def keep_freed_memory() -> bool:
    """Keep freed blocks of up to 1 GiB in the heap for reuse (glibc on Linux; elsewhere nothing is changed).
    Returns whether the allocator was changed by this call."""
    if os.environ.get(SWITCH, "1") == "0" or any(name in os.environ for name in GLIBC_SETTINGS):
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    if not hasattr(libc, "gnu_get_libc_version"):  # glibc only: other C libraries read these parameters otherwise
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
