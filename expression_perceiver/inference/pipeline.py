"""The expression-regression `transformers` pipeline (`modeling/pipeline_expression_perceiver.py`, a Hub bundle file)
added to checkpoint folders: the pipeline file beside the weights and `custom_pipelines` in `config.json`, so that
`transformers.pipeline(model="org/name", trust_remote_code=True)` works where this package is not installed.

```python
from expression_perceiver.inference.pipeline import add_pipeline

add_pipeline("runs/seed0")   # then push the folder, or load it: pipeline(model="runs/seed0", trust_remote_code=True)
```
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..data.atomic import write_json
from ..modeling import pipeline_expression_perceiver as bundle

TASK = bundle.TASK
ExpressionRegressionPipeline = bundle.ExpressionRegressionPipeline


def add_pipeline(folder: str | os.PathLike) -> Path:
    """Adds the pipeline to a saved checkpoint folder (idempotent); returns the pipeline file written."""
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{folder}: no config.json (not a saved model folder)")
    config = json.loads(config_path.read_text())
    target = folder / bundle.PIPELINE_FILE
    shutil.copyfile(bundle.__file__, target)
    config["custom_pipelines"] = {
        **(config.get("custom_pipelines") or {}),
        **json.loads(json.dumps(bundle.CUSTOM_PIPELINES)),
    }
    write_json(config_path, config)
    return target


def register_pipeline() -> None:
    """`transformers.pipeline("expression-regression", model=...)` with this package's class."""
    bundle.register_pipeline()


__all__ = ["ExpressionRegressionPipeline", "TASK", "add_pipeline", "register_pipeline"]
