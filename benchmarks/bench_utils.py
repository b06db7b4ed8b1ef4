"""Shared helpers of the benchmark scripts: interleaved timing, peak memory in a fresh process, machine description.

Timings on a shared machine drift with the load of other processes, so every comparison runs its contenders in
turn (one repetition of each, round after round) and reports medians and their ratio; peak memory is measured in a
fresh subprocess per configuration, since a process's peak resident set size can only grow.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

BENCHMARKS = Path(__file__).resolve().parent
REPOSITORY = BENCHMARKS.parent


def interleaved_medians(cases: dict[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds per call of each case, the cases run in turn so that load changes hit them alike."""
    for _ in range(warmup):
        for run in cases.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, run in cases.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def status_mb(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS: resident now, VmHWM: peak resident), in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1e3
    raise KeyError(field)


def reset_peak_resident() -> None:
    """Restarts the peak resident set size (VmHWM) from the current one (Linux >= 4.0), so that a peak measured
    afterwards belongs to what runs afterwards, not to imports or set-up."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def peak_above_idle_mb(run: Callable[[], object]) -> dict[str, float]:
    """Peak resident memory of `run()` above the resident memory just before it, in MB."""
    reset_peak_resident()
    idle = status_mb("VmRSS")
    run()
    peak = status_mb("VmHWM")
    return {"idle_mb": idle, "peak_mb": peak, "delta_mb": peak - idle}


def run_script(script: str, args: list[str], environment: dict[str, str] | None = None) -> tuple[str, dict]:
    """Runs `script` (a file of this folder) in a fresh Python process, with `environment` added to this one's;
    returns what it printed before its last line, and that last line parsed as JSON."""
    command = [sys.executable, str(BENCHMARKS / script), *args]
    path = os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, **(environment or {})}
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    *text, last = result.stdout.strip().splitlines()
    return "\n".join(text), json.loads(last)


def run_probe(script: str, args: list[str]) -> dict:
    """The JSON that `script` prints last, run in a fresh Python process."""
    return run_script(script, args)[1]


def cpu_model() -> str:
    with open("/proc/cpuinfo") as cpuinfo:
        names = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    return names[0] if names else platform.processor()


def machine_line() -> str:
    """One line naming the machine, library versions and the load at the time of the measurement."""
    import transformers

    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"CPU: {cpu_model()}, nproc {os.cpu_count()}, torch threads {torch.get_num_threads()}, "
        f"torch {torch.__version__}, transformers {transformers.__version__}, "
        f"Python {platform.python_version()}, load average {load}"
    )


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    align = ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
