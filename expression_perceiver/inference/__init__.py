"""Inference: expression predictions (one model or an ensemble) and embeddings from strings, records and files.

```python
from expression_perceiver import predict

table = predict(["ACGT" * 250, "GATTACA" * 100], "org/dna-perceiver@v1")  # a pandas DataFrame
predict("promoters.fa.gz", ["runs/seed0", "runs/seed1"], output="predictions.tsv")  # + predictions.tsv.json
```

`variant_effects` scores the variants of a VCF in their genes' promoter windows (ref, alt, delta per ALT and gene);
`mutagenesis` scans every substitution of a window, region or sequence; `attribute` attributes predictions to
positions and letters (ISM, gradients, integrated gradients, DeepLIFT/SHAP, cross-attention).

`Predictor` scores batches of examples already built (`predict_batch`) and streams any number of them in input
order (`predict_chunks`); `Embedder` does the same for summary vectors and latents.

Every task runs in one skeleton, `InferenceRun` (`task.py`): output checks, models, features and proteins, progress,
sharing the work between processes, the JSON record and rank-0 writing. A new task supplies its examples and a
writer of its rows.
"""

from .api import RunSummary, embed, predict, resolve_inputs
from .attribution import attribute
from .inputs import (
    CROP_RULES,
    Example,
    FeatureTable,
    InputFile,
    InputPreparer,
    ModelInputs,
    ProteinSource,
    crop_sequence,
)
from .models import LoadedModel, ModelLoadError, ModelSource, load_model, resolve_model
from .mutagenesis import MutagenesisResult, mutagenesis
from .predictor import Embedder, Predictor
from .task import Chunk, InferenceRun
from .variants import variant_effects

__all__ = [
    "CROP_RULES",
    "attribute",
    "Chunk",
    "Embedder",
    "Example",
    "FeatureTable",
    "InferenceRun",
    "InputFile",
    "InputPreparer",
    "LoadedModel",
    "ModelInputs",
    "ModelLoadError",
    "ModelSource",
    "MutagenesisResult",
    "Predictor",
    "ProteinSource",
    "RunSummary",
    "crop_sequence",
    "embed",
    "load_model",
    "mutagenesis",
    "predict",
    "resolve_inputs",
    "resolve_model",
    "variant_effects",
]
