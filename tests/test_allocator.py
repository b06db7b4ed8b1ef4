"""`keep_freed_memory`: large blocks come from the heap and stay there once freed, so the next step reuses them
instead of faulting fresh pages in. Checked in fresh processes (the setting is process-wide) through glibc's own
account of its memory (`mallinfo2`)."""

import json
import os
import subprocess
import sys

import pytest

from expression_perceiver.allocator import GLIBC_SETTINGS, SWITCH

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator: Linux only")

# A 48 MB tensor allocated, then freed: where glibc served it (mmapped blocks) and what it keeps once it is freed.
PROBE = """
import ctypes, json
import torch
from expression_perceiver.allocator import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
changed = keep_freed_memory()
block = torch.ones(12 * 1024 * 1024)  # 48 MB
mmapped_while_alive = libc.mallinfo2().hblkhd
del block
print(json.dumps({"changed": changed, "mmapped": mmapped_while_alive, "kept_free": libc.mallinfo2().fordblks}))
"""
BLOCK = 48 * 1024 * 1024


def probe(**environment: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in GLIBC_SETTINGS and k != SWITCH} | environment
    result = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.splitlines()[-1])


def test_large_blocks_come_from_the_heap_and_stay_for_reuse():
    kept = probe()
    assert kept["changed"]
    assert kept["mmapped"] < BLOCK  # served from the heap, not by fresh pages
    assert kept["kept_free"] >= BLOCK  # freed, and still the process's for the next step


def test_the_switch_and_glibc_settings_leave_the_allocator_as_it_is():
    for environment in ({SWITCH: "0"}, {"MALLOC_MMAP_THRESHOLD_": "131072"}):
        default = probe(**environment)
        assert not default["changed"]
        assert default["mmapped"] >= BLOCK  # glibc's default: fresh pages for a block this large
        assert default["kept_free"] < BLOCK  # and back to the system once freed
