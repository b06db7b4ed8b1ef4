"""Interpretation of attribution files: which part of the window matters (positional profiles, set beside the masking
study's halves) and which sequence patterns the model reads (TF-MoDISco motifs matched to JASPAR, FIMO annotation).

```python
from expression_perceiver.inference.attribution_files import AttributionFile
from expression_perceiver.interpretation import discover_motifs, positional_profile, summarise_regions, write_profile

file = AttributionFile.open("attributions.npz")
table = positional_profile(file)  # mean |attribution| per position, bootstrap 95% intervals
write_profile(table, "profile.tsv", "profile.png")
summarise_regions(table)  # shares of the first, middle and last halves; the peak
discover_motifs(file, "motifs/")  # motifs.tsv, logos, report.md, modisco_results.h5
```

Motif discovery and annotation need `modisco-lite`, `memelite`, `pyjaspar` and `logomaker`; they are imported when
used, so profiles work without them. Motif databases and `annotate_sequence` live in `expression_perceiver.data.motifs`
and are re-exported here.
"""

from ..data.motifs import Motif, MotifDatabase, MotifHit, annotate_sequence, motif_database
from .motifs import MotifMatch, MotifReport, PatternSummary, discover_motifs
from .profiles import ProfileTable, positional_profile, summarise_regions, write_profile

__all__ = [
    "Motif",
    "MotifDatabase",
    "MotifHit",
    "MotifMatch",
    "MotifReport",
    "PatternSummary",
    "ProfileTable",
    "annotate_sequence",
    "discover_motifs",
    "motif_database",
    "positional_profile",
    "summarise_regions",
    "write_profile",
]
