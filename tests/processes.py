"""How long a test waits for a process it starts: its Python start-ups, timed on this machine as it runs now, plus
its work, stretched by how much slower than a quiet machine this one runs now.

A fixed timeout is sized on a quiet machine; under load (other tests' processes, other people's jobs on the same
cores) a process that is merely slow runs past it. `process_timeout` measures once per test process what a fresh
interpreter takes to import torch, transformers and datasets (what nearly every process these tests start does
first) and sizes the timeout from that:

    timeout = scale * max(FLOOR_S, MARGIN * (starts * start_up + work_s * slowness + wait_s))

with `slowness` the measured start-up over `QUIET_START_S`, and `scale` from `EXPRESSION_PERCEIVER_TEST_TIMEOUT_SCALE`
(default 1) for machines slower still, such as emulated or heavily shared ones.
"""

import functools
import os
import subprocess
import sys
import time

SCALE_VARIABLE = "EXPRESSION_PERCEIVER_TEST_TIMEOUT_SCALE"
# A fresh interpreter's `import torch, transformers, datasets` on a quiet 2-core development machine with warm file
# caches: 2.4 s at best.
QUIET_START_S = 2.5
# Room for the load to grow after the measurement (processes of other tests starting beside this one) and for
# estimates of work that are rough by nature.
MARGIN = 3.0
# No timeout below this: a hung process is still caught within minutes, and a quiet machine gets the fixed timeouts
# these tests had before they scaled.
FLOOR_S = 300.0
START_UP_PROBE = "import torch, transformers, datasets"


def timeout_scale() -> float:
    """The factor from `EXPRESSION_PERCEIVER_TEST_TIMEOUT_SCALE` that multiplies every timeout (1 when unset)."""
    value = os.environ.get(SCALE_VARIABLE, "").strip() or "1"
    try:
        scale = float(value)
    except ValueError:
        raise ValueError(f"{SCALE_VARIABLE}={value!r}: expected a positive number") from None
    if not scale > 0:
        raise ValueError(f"{SCALE_VARIABLE}={value!r}: expected a positive number")
    return scale


@functools.cache
def start_up_seconds() -> float:
    """Seconds a fresh interpreter takes to import torch, transformers and datasets on this machine now; measured on
    first use, once per test process (each pytest-xdist worker measures its own)."""
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-c", START_UP_PROBE], check=True, capture_output=True, timeout=FLOOR_S * timeout_scale()
    )
    return time.monotonic() - started


def slowness() -> float:
    """How many times slower than a quiet machine this one runs now (at least 1)."""
    return max(1.0, start_up_seconds() / QUIET_START_S)


def process_timeout(starts: int = 1, work_s: float = 0.0, wait_s: float = 0.0) -> float:
    """Seconds to allow a subprocess that starts `starts` Python processes in all (an `accelerate launch` of two
    ranks: the launcher and each rank, since on a loaded machine ranks that start side by side share the cores),
    computes for `work_s` seconds on a quiet machine, and waits `wait_s` seconds of wall-clock time that load does not
    stretch (sleeps, backoff, a server's timeouts)."""
    needed = starts * start_up_seconds() + work_s * slowness() + wait_s
    return timeout_scale() * max(FLOOR_S, MARGIN * needed)
