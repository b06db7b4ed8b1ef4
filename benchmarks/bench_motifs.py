"""`discover_motifs` (TF-MoDISco-lite, then TOMTOM against JASPAR and the report) on a large attribution file, on
this machine's CPU: wall time, seqlets, patterns, whether the planted motif is found and named, peak memory.

The file: random DNA, the TATA box TATAAAAG planted in half of the sequences at a uniform place, its letters'
hypothetical contributions 1 (times U(0.5, 1.5) per copy) over N(0, 0.05) noise everywhere, written with the
package's `AttributionWriter` (so MoDISco reads it as it reads `attribute`'s files).

    python benchmarks/bench_motifs.py --sequences 10000 --length 1000
"""

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_utils import machine_line

from expression_perceiver.inference.attribution_files import AttributionFile, AttributionWriter
from expression_perceiver.interpretation import discover_motifs, motif_database

TATA = "TATAAAAG"
CHUNK = 500


def write_planted(path: Path, sequences: int, length: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    motif = np.array(["ACGT".index(letter) for letter in TATA])
    metadata = {"method": "planted", "letters": "ACGT", "origin": "tss", "tss_index": length // 2}
    positions = np.arange(length) - length // 2
    writer = AttributionWriter(path, metadata, {"positions": positions})
    for first in range(0, sequences, CHUNK):
        count = min(CHUNK, sequences - first)
        codes = rng.integers(0, 4, size=(count, length))
        hypothetical = rng.normal(0.0, 0.05, size=(count, length, 4)).astype(np.float32)
        carriers = np.flatnonzero(rng.random(count) < 0.5)
        starts = rng.integers(0, length - len(TATA), size=len(carriers))
        scale = rng.uniform(0.5, 1.5, size=len(carriers))
        for row, start, weight in zip(carriers, starts, scale, strict=True):
            codes[row, start : start + len(TATA)] = motif
            hypothetical[row, np.arange(start, start + len(TATA)), motif] += weight
        one_hot = np.eye(4, dtype=np.float32)[codes]
        writer.add(
            [f"s{first + i}" for i in range(count)],
            [length] * count,
            {
                "one_hot": list(one_hot),
                "hypothetical": list(hypothetical),
                "attributions": list(one_hot * hypothetical),
            },
            {},
        )
    writer.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequences", type=int, default=10_000)
    parser.add_argument("--length", type=int, default=1_000)
    args = parser.parse_args()
    print(machine_line())
    database = motif_database(None)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "planted.npz"
        write_planted(path, args.sequences, args.length)
        start = time.perf_counter()
        report = discover_motifs(AttributionFile.open(path), Path(folder) / "report", motif_db=database)
        wall = time.perf_counter() - start
    print(f"\n### discover_motifs on {args.sequences:,} sequences x {args.length:,} positions\n")
    for line in report.summary_lines():
        print(line)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"\nwall {wall:.0f} s ({wall / 60:.1f} min), peak resident memory {peak_gb:.2f} GB")


if __name__ == "__main__":
    main()
