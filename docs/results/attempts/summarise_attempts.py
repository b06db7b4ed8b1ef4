"""Validation figures of a recipe search's runs (folder/attempt/seedN/results.json), one row per run and one mean row
per attempt, as TSV; the test split is not shown (it is read once, for the recipe selected on validation).

    python docs/results/attempts/summarise_attempts.py outputs/attempts/epd_human
"""

import json
import statistics
import sys
from pathlib import Path


def main(folder: str) -> None:
    print("attempt\tseed\tepochs\tvalidation_r2\tvalidation_R2\twall_time_s")
    for attempt in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        r2 = []
        for run in sorted(attempt.glob("seed*/results.json")):
            results = json.loads(run.read_text())
            validation = results["validation"]
            r2.append(validation["r2"])
            print(
                f"{attempt.name}\t{results['seed']}\t{validation.get('epoch', '')}\t{validation['r2']:.4f}\t"
                f"{validation['coefficient_of_determination']:.4f}\t{results['wall_time_s']:.0f}"
            )
        if r2:
            print(f"{attempt.name}\tmean of {len(r2)}\t\t{statistics.mean(r2):.4f}\t\t")


if __name__ == "__main__":
    main(sys.argv[1])
