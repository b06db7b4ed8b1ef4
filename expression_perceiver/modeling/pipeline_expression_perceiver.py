"""A `transformers` pipeline for expression regression, shipped with the model's code so that a checkpoint on the Hub
needs no package install:

```python
from transformers import pipeline

regress = pipeline(model="org/dna-perceiver", trust_remote_code=True)
regress("ACGT" * 2_500)                     # {"predictions": {"output": 1.93}, "units": "data"}
regress(["ACGT" * 2_500, "GATTACA" * 100], batch_size=2)
regress({"sequence": "ACGT" * 2_500, "features": [0.1] * 8})   # a model that reads per-gene features
regress("ACGT" * 2_500, fill_missing_features=True)             # ... without them: the training means
regress("ACGT" * 2_500, units="z-score")    # the model's standardised output
```

A checkpoint declares it in `config.json` (`custom_pipelines`, task `expression-regression`) beside this file; the
pipeline reads the main sequence (promoter DNA, or a protein for a ProteinPerceiver) as a string, optionally per-gene
`features` and, for a Protein&DNAPerceiver, a `protein_sequence` (its tokenizer from the `protein_tokenizer`
subfolder). An input without the features a model reads is an error unless `fill_missing_features=True`: then they
are the training split's means stored in the config (`feature_mean`; zeros for a checkpoint without them, the mean
of z-scored features) and the output says `"features_filled": True`, as `predict --fill-missing-features` does. A
sequence longer than the model reads (`max_sequence_length`) keeps its first positions, as the package's `predict`
does by default. Predictions are in the training labels' units (`label_mean` / `label_std` in the config) or, for
`units="z-score"` or a checkpoint without them, z-scores. Outputs are named by the config's `id2label` when its labels
are named, else `output` (`output_0`, `output_1`, ... with several). A model trained with its first, middle or last
positions removed (`training_masking` in the config, mode `drop`) reads its inputs with the same positions removed, as
its evaluation and `predict` did; one trained with random spans removed is refused (its evaluation keyed each span by
the example: `predict` reproduces it).

This file imports only torch and transformers: it is part of the Hub bundle.
"""

import re

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, Pipeline

TASK = "expression-regression"
PIPELINE_FILE = "pipeline_expression_perceiver.py"
UNITS = ("data", "z-score")
DEFAULT_LABEL = re.compile(r"^LABEL_\d+$")
# What `config.json` holds so that `pipeline(model=..., trust_remote_code=True)` finds this class.
CUSTOM_PIPELINES = {
    TASK: {
        "impl": "pipeline_expression_perceiver.ExpressionRegressionPipeline",
        "pt": ["AutoModelForSequenceClassification"],
        "type": "text",
    }
}


class ExpressionRegressionPipeline(Pipeline):
    """Expression predicted from sequences (see the module docstring).

    Call with a sequence string, a mapping (`sequence`, optionally `features` and `protein_sequence`), or a list of
    them. Options: `units` (`"data"`, default, or `"z-score"`), `features` and `protein_sequence` applied to every
    input that has none, and `fill_missing_features` (the training means for an input without features). Each input
    gives `{"predictions": {output name: value}, "units": "data" | "z-score"}`, plus `"features_filled": True` for an
    input whose features were filled.
    """

    _load_tokenizer = True
    _load_processor = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._protein_tokenizer = None

    # --- the model's facts ------------------------------------------------------------------------------------------

    @property
    def encoder_config(self):
        return getattr(self.model.config, "dna_config", None) or self.model.config

    @property
    def reads_protein(self) -> bool:
        return getattr(self.model.config, "protein_config", None) is not None

    @property
    def output_names(self) -> list[str]:
        config = self.model.config
        labels = [str(config.id2label[i]) for i in range(config.num_labels)] if config.id2label else []
        if labels and not any(DEFAULT_LABEL.match(label) for label in labels):
            return labels
        return ["output"] if config.num_labels == 1 else [f"output_{i}" for i in range(config.num_labels)]

    @property
    def feature_fill(self) -> list[float]:
        """What `fill_missing_features` gives an input without features: the training split's feature means stored
        in the config (`feature_mean`), else zeros (the mean of z-scored features such as Xpresso's)."""
        config = self.encoder_config
        width = int(getattr(config, "num_features", 0) or 0)
        mean = getattr(config, "feature_mean", None)
        if mean is None:
            mean = getattr(self.model.config, "feature_mean", None)
        return [float(value) for value in mean] if mean is not None else [0.0] * width

    def protein_tokenizer(self):
        if self._protein_tokenizer is None:
            self._protein_tokenizer = AutoTokenizer.from_pretrained(
                self.model.name_or_path, subfolder="protein_tokenizer", trust_remote_code=True
            )
        return self._protein_tokenizer

    # --- the pipeline's steps ---------------------------------------------------------------------------------------

    def _sanitize_parameters(
        self, units=None, features=None, protein_sequence=None, fill_missing_features=None, **kwargs
    ):
        preprocess, postprocess = {}, {}
        if features is not None:
            preprocess["features"] = features
        if protein_sequence is not None:
            preprocess["protein_sequence"] = protein_sequence
        if fill_missing_features is not None:
            preprocess["fill_missing_features"] = bool(fill_missing_features)
        if units is not None:
            if units not in UNITS:
                raise ValueError(f"units must be one of {', '.join(UNITS)}, not {units!r}")
            postprocess["units"] = units
        return preprocess, {}, postprocess

    def _encode(self, tokenizer, sequence: str, limit: int, prefix: str = "") -> dict:
        sequence = sequence.strip()
        if sequence.endswith("*"):
            sequence = sequence[:-1]
        if not sequence:
            raise ValueError("an empty sequence cannot be scored")
        encoded = tokenizer(sequence[:limit], return_tensors="pt", add_special_tokens=False)
        return {f"{prefix}input_ids": encoded["input_ids"], f"{prefix}attention_mask": encoded["attention_mask"]}

    def _drop_trained_span(self, model_inputs: dict) -> None:
        """Removes the span a `drop`-mode model's evaluation removed: the first, middle (centred, rounded towards
        the start) or last `mask_length` positions, or `mask_fraction` of the sequence's length (at least 1)."""
        masking = getattr(self.model.config, "training_masking", None) or {}
        strategy = masking.get("strategy", "none")
        if strategy == "none" or masking.get("mode") != "drop":
            return
        if strategy == "random_span":
            raise ValueError(
                "this model was trained with random spans removed (training_masking mode drop), which its evaluation "
                "placed per example; predict with `expression-perceiver predict`, which reproduces them"
            )
        length = model_inputs["input_ids"].shape[1]
        fraction = masking.get("mask_fraction")
        span = max(round(length * fraction), 1) if fraction is not None else int(masking["mask_length"])
        if span >= length:
            raise ValueError(
                f"this model reads its inputs with {span:,} {strategy} positions removed (training_masking mode "
                f"drop), which leaves nothing of a sequence of {length:,}"
            )
        start = {"first": 0, "middle": (length - span) // 2, "last": length - span}[strategy]
        keep = torch.ones(length, dtype=torch.bool)
        keep[start : start + span] = False
        for key in ("input_ids", "attention_mask"):
            model_inputs[key] = model_inputs[key][:, keep]

    def preprocess(self, inputs, features=None, protein_sequence=None, fill_missing_features=False):
        if isinstance(inputs, dict):
            if "sequence" not in inputs:
                raise ValueError(f"an input mapping needs a 'sequence' (keys: {', '.join(inputs)})")
            features = inputs.get("features", features)
            protein_sequence = inputs.get("protein_sequence", protein_sequence)
            inputs = inputs["sequence"]
        if not isinstance(inputs, str):
            raise ValueError(f"give a sequence string or a mapping with 'sequence', not {type(inputs).__name__}")
        config = self.encoder_config
        model_inputs = self._encode(self.tokenizer, inputs, int(config.max_sequence_length))
        self._drop_trained_span(model_inputs)
        width = int(getattr(config, "num_features", 0) or 0)
        filled = False
        if width:
            if features is None and not fill_missing_features:
                raise ValueError(
                    f"this model reads {width} per-gene features: pass features=[...] (or in the input), or "
                    "fill_missing_features=True for the training means (config feature_mean; zeros without it)"
                )
            if features is None:
                features, filled = self.feature_fill, True
            values = torch.tensor([list(features)], dtype=torch.float32)
            if values.shape != (1, width):
                raise ValueError(f"this model reads {width} per-gene features, {values.shape[-1]} were given")
            model_inputs["features"] = values
        if self.reads_protein:
            if not protein_sequence:
                raise ValueError("this model reads the gene's protein beside its promoter: pass protein_sequence=...")
            limit = int(self.model.config.protein_config.max_sequence_length)
            model_inputs.update(self._encode(self.protein_tokenizer(), protein_sequence, limit, "protein_"))
        model_inputs["features_filled"] = torch.tensor([filled])  # a tensor, so that batches collate and split it
        return model_inputs

    def _forward(self, model_inputs):
        filled = model_inputs.pop("features_filled")
        return {"logits": self.model(**model_inputs).logits, "features_filled": filled}

    def postprocess(self, model_outputs, units="data"):
        logits = model_outputs["logits"].float().reshape(-1).cpu()
        config = self.model.config
        # A calibration fitted on the validation split (config `calibration`: observed = intercept + slope x
        # predicted, in standardised units) is applied first, as `predict` applies it.
        calibration = getattr(config, "calibration", None)
        if calibration:
            slope = torch.tensor(calibration["slope"], dtype=torch.float32)
            logits = logits * slope + torch.tensor(calibration["intercept"], dtype=torch.float32)
        mean, std = getattr(config, "label_mean", None), getattr(config, "label_std", None)
        if units == "data" and mean is not None and std is not None:
            values = logits * torch.tensor(std, dtype=torch.float32) + torch.tensor(mean, dtype=torch.float32)
        else:
            values, units = logits, "z-score"
        output = {"predictions": dict(zip(self.output_names, values.tolist(), strict=True)), "units": units}
        if calibration:
            output["calibrated"] = True
        if bool(model_outputs["features_filled"].reshape(-1)[0]):
            output["features_filled"] = True
        return output


def register_pipeline() -> None:
    """Makes `pipeline("expression-regression", model=...)` and `Pipeline.save_pretrained` know this class."""
    from transformers.pipelines import PIPELINE_REGISTRY

    if TASK not in PIPELINE_REGISTRY.supported_tasks:
        PIPELINE_REGISTRY.register_pipeline(
            TASK, pipeline_class=ExpressionRegressionPipeline, pt_model=AutoModelForSequenceClassification, type="text"
        )


__all__ = ["CUSTOM_PIPELINES", "ExpressionRegressionPipeline", "PIPELINE_FILE", "TASK", "register_pipeline"]
