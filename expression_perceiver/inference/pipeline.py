"""The expression-regression `transformers` pipeline (`modeling/pipeline_expression_perceiver.py`, a Hub bundle file)
added to checkpoint folders: the pipeline file beside the weights and `custom_pipelines` in `config.json`, so that
`transformers.pipeline(model="org/name", trust_remote_code=True)` works where this package is not installed.

```python
from expression_perceiver.inference.pipeline import add_pipeline

add_pipeline("runs/seed0")   # then push the folder, or load it: pipeline(model="runs/seed0", trust_remote_code=True)
```

A checkpoint saved before a model's facts moved into `config.json` also gets them there from its run's
`results.json` (label names as `id2label`, units, feature names, training masking and seed), so that the pipeline
names and computes its outputs as `predict` does.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from transformers import AutoConfig

from ..data.atomic import write_json
from ..modeling import FAMILIES
from ..modeling import pipeline_expression_perceiver as bundle
from .models import adopt_run_report_facts

TASK = bundle.TASK
ExpressionRegressionPipeline = bundle.ExpressionRegressionPipeline


def add_pipeline(folder: str | os.PathLike) -> Path:
    """Adds the pipeline to a saved checkpoint folder (idempotent); returns the pipeline file written."""
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{folder}: no config.json (not a saved model folder)")
    config = {**json.loads(config_path.read_text()), **run_report_facts(folder)}
    target = folder / bundle.PIPELINE_FILE
    shutil.copyfile(bundle.__file__, target)
    config["custom_pipelines"] = {
        **(config.get("custom_pipelines") or {}),
        **json.loads(json.dumps(bundle.CUSTOM_PIPELINES)),
    }
    write_json(config_path, config)
    return target


def run_report_facts(folder: Path) -> dict:
    """The config.json fields a checkpoint's run report holds and its config lacks (none for today's checkpoints)."""
    config = AutoConfig.from_pretrained(folder, trust_remote_code=False)  # never code from the folder
    reads_protein = FAMILIES[config.model_type].reads_protein
    encoder = config.dna_config if reads_protein else config
    if config.training_masking is not None:
        return {}
    adopt_run_report_facts(config, encoder, folder)
    if config.training_masking is None:  # no run report beside it
        return {}
    facts = {
        "id2label": {str(index): label for index, label in config.id2label.items()},
        "label2id": dict(config.label2id),
        "label_units": config.label_units,
        "training_masking": config.training_masking,
        "training_seed": config.training_seed,
    }
    if reads_protein:
        facts["dna_config"] = {**config.to_dict()["dna_config"], "feature_names": encoder.feature_names}
    else:
        facts["feature_names"] = encoder.feature_names
    return facts


def register_pipeline() -> None:
    """`transformers.pipeline("expression-regression", model=...)` with this package's class."""
    bundle.register_pipeline()


__all__ = ["ExpressionRegressionPipeline", "TASK", "add_pipeline", "register_pipeline"]
