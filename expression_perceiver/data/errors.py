"""Problems with input data: `DataError` stops a read; `ReadReport` counts what a read skipped or changed.

Every message names the file, the record (row, line, key or id) and what is wrong, so that a biologist can fix
the input without reading a traceback.
"""

import logging
import math
from dataclasses import asdict, dataclass, field
from os import PathLike
from pathlib import Path

logger = logging.getLogger(__name__)
# Reports reach the user through the application's logging configuration (the CLI prints its own summary).
logger.addHandler(logging.NullHandler())

# How many record ids a report keeps as examples of each kind of problem.
EXAMPLES_KEPT = 5


# The largest magnitude a label or feature may have, as read (before log10). Expression levels lie far below it (a
# cell holds some 1e5 mRNA and 1e10 protein molecules; TPM and ppm stop at 1e6; a litre of a 1 M solution holds
# 6e23 molecules), so a larger value is a typo, a unit slip or a missing-value code such as 1e308. Below it every
# number a run derives from the data stays finite: features stored as float32 (largest 3.4e38), squares and sums of
# squares of labels in the metrics (float64, largest 1.8e308), log10 of any label.
LARGEST_VALUE = 1e30


class DataError(ValueError):
    """Bad input data. The message is one line naming the file, the record and what is wrong."""


def check_value(value: float, where: str, text: str | None = None) -> float:
    """`value` when it is finite and within +-`LARGEST_VALUE`; otherwise `DataError` naming `where` (the file, the
    record and the column) and the value as written (`text`, when read from text)."""
    shown = repr(text) if text is not None else repr(value)
    if not math.isfinite(value):
        raise DataError(f"{where} is {shown}, not a finite number")
    if abs(value) > LARGEST_VALUE:
        raise DataError(
            f"{where} is {shown}, beyond +-{LARGEST_VALUE:g}: no expression level or feature is that large (a typo, "
            "a unit slip or a missing-value code?)"
        )
    return value


def file_label(path: str | PathLike) -> str:
    """The name a message uses for a file: its base name, which is what users recognise in a folder."""
    return Path(path).name or str(path)


@dataclass
class IdTally:
    """How many records had one kind of problem, with the first few of their ids."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, record_id: str) -> None:
        self.count += 1
        if len(self.examples) < EXAMPLES_KEPT:
            self.examples.append(record_id)

    def describe(self) -> str:
        more = ", ..." if self.count > len(self.examples) else ""
        return f"{self.count:,} (first: {', '.join(self.examples)}{more})"


@dataclass
class ReadReport:
    """What a reader did with its input: records yielded, records dropped (by reason) and records kept but
    changed or worth knowing about (truncated, padded with N, duplicate id, non-standard letters)."""

    source: str
    records: int = 0
    dropped: dict[str, IdTally] = field(default_factory=dict)
    noted: dict[str, IdTally] = field(default_factory=dict)

    def drop(self, reason: str, record_id: str) -> None:
        self.dropped.setdefault(reason, IdTally()).add(record_id)

    def note(self, what: str, record_id: str) -> None:
        self.noted.setdefault(what, IdTally()).add(record_id)

    def dropped_count(self, reason: str) -> int:
        return self.dropped[reason].count if reason in self.dropped else 0

    def noted_count(self, what: str) -> int:
        return self.noted[what].count if what in self.noted else 0

    def summary_lines(self) -> list[str]:
        lines = [f"{self.source}: {self.records:,} records"]
        lines += [f"  dropped, {reason}: {tally.describe()}" for reason, tally in self.dropped.items()]
        lines += [f"  {what}: {tally.describe()}" for what, tally in self.noted.items()]
        return lines

    def log(self) -> None:
        """Logs the summary; drops are warnings because they shrink the data set."""
        logger.info("%s: %d records", self.source, self.records)
        for reason, tally in self.dropped.items():
            logger.warning("%s: dropped %s records, %s", self.source, tally.describe(), reason)
        for what, tally in self.noted.items():
            logger.info("%s: %s: %s", self.source, what, tally.describe())

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "records": self.records,
            "dropped": {reason: asdict(tally) for reason, tally in self.dropped.items()},
            "noted": {what: asdict(tally) for what, tally in self.noted.items()},
        }


__all__ = ["LARGEST_VALUE", "DataError", "IdTally", "ReadReport", "check_value", "file_label"]
