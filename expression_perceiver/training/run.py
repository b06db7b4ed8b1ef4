"""The training recipe behind `accelerate launch train.py`: data, model, Trainer, honest evaluation, checkpoint."""

import json
import logging
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import transformers
from transformers import AutoModelForSequenceClassification, HfArgumentParser, set_seed

from ..data import generate_promoters
from ..data_collators import MaskingCollator, MaskingEpochCallback
from .arguments import DataArguments, ExpressionTrainingArguments, MaskingArguments, ModelArguments
from .trainer import ExpressionTrainer, build_model, metrics_in_original_units, tokenizer_for

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")


def parse_arguments(argv: list[str] | None = None, default_recipe: Path | None = None):
    """Dataclass arguments from a YAML/JSON recipe (one path argument), the command line, or `default_recipe`."""
    parser = HfArgumentParser((ModelArguments, DataArguments, MaskingArguments, ExpressionTrainingArguments))
    argv = sys.argv[1:] if argv is None else argv
    if not argv and default_recipe is not None:
        argv = [str(default_recipe)]
    if len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
        return parser.parse_yaml_file(argv[0])
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(argv[0])
    return parser.parse_args_into_dataclasses(args=argv)


def synthetic_splits(data_args: DataArguments) -> tuple[datasets.DatasetDict, dict]:
    """Generated promoters with a planted signal (see `expression_perceiver.data.synthetic`), split 80/10/10."""
    promoters = generate_promoters(data_args.synthetic_num_genes, data_args.synthetic_length, data_args.synthetic_seed)
    table = datasets.Dataset.from_dict(promoters.to_dict())
    n = len(table)
    bounds = {"train": (0, int(0.8 * n)), "validation": (int(0.8 * n), int(0.9 * n)), "test": (int(0.9 * n), n)}
    splits = datasets.DatasetDict({name: table.select(range(*bounds[name])) for name in SPLITS})
    train_labels = np.asarray(splits["train"]["label"], dtype=np.float64).reshape(len(splits["train"]), -1)
    metadata = {
        "source": f"synthetic promoters (n={n}, length={data_args.synthetic_length}, seed={data_args.synthetic_seed})",
        "alphabet": "dna",
        "num_features": promoters.features.shape[1],
        "label_mean": train_labels.mean(axis=0).tolist(),
        "label_std": train_labels.std(axis=0).tolist(),
    }
    return splits, metadata


def load_splits(data_args: DataArguments) -> tuple[datasets.DatasetDict, dict]:
    if data_args.dataset_dir is None:
        return synthetic_splits(data_args)
    from ..data.dataset_dict import load_dataset_dir

    return load_dataset_dir(data_args.dataset_dir)


def label_scale(metadata: dict, standardize: bool) -> tuple[list[float], list[float]]:
    mean, std = np.atleast_1d(metadata["label_mean"]), np.atleast_1d(metadata["label_std"])
    if not standardize:
        mean, std = np.zeros_like(mean), np.ones_like(std)
    return mean.tolist(), std.tolist()


def with_training_columns(split: datasets.Dataset, mean: list[float], std: list[float]) -> datasets.Dataset:
    """Adds `idx` (the row, which keys reproducible masks) and `labels` (standardised) to a split."""
    labels = (np.asarray(split["label"], dtype=np.float64).reshape(len(split), -1) - mean) / std
    split = split.add_column("idx", np.arange(len(split)))
    values = labels[:, 0] if labels.shape[1] == 1 else labels
    return split.remove_columns("label").add_column("labels", values.tolist())


def main(argv: list[str] | None = None, default_recipe: Path | None = None) -> dict:
    model_args, data_args, masking_args, training_args = parse_arguments(argv, default_recipe)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    transformers.utils.logging.set_verbosity(training_args.get_process_log_level())
    set_seed(training_args.seed)
    started = time.time()

    # Data: splits, label scale from the train split only, standardised training targets.
    splits, metadata = load_splits(data_args)
    mean, std = label_scale(metadata, data_args.standardize_labels)
    splits = datasets.DatasetDict({name: with_training_columns(splits[name], mean, std) for name in SPLITS})
    if data_args.max_eval_samples:
        for name in ("validation", "test"):
            splits[name] = splits[name].select(range(min(data_args.max_eval_samples, len(splits[name]))))

    # Model, tokenizer and collators: masking augmentation on training batches only.
    model = build_model(model_args, len(mean), metadata.get("num_features", 0), mean, std)
    tokenizer = tokenizer_for(model.config.model_type)
    collator = MaskingCollator(
        tokenizer=tokenizer,
        strategy=masking_args.mask_strategy,
        mode=masking_args.mask_mode,
        mask_length=masking_args.mask_length,
        num_spans=masking_args.mask_num_spans,
        mask_token=masking_args.mask_token,
        seed=training_args.seed,
    )
    logger.info("model %s with %d parameters", type(model).__name__, model.num_parameters())

    trainer = ExpressionTrainer(
        model=model,
        args=training_args,
        train_dataset=splits["train"],
        eval_dataset=splits["validation"],
        processing_class=tokenizer,
        data_collator=collator,
        eval_data_collator=collator.for_evaluation(),
        compute_metrics=metrics_in_original_units(mean, std, metadata.get("label_names")),
        callbacks=[MaskingEpochCallback(collator)],
    )
    train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model()  # the selected (best validation) model, with tokenizer and remote code

    # Honest evaluation: the validation split selected the model; the test split is evaluated once, here.
    validation = trainer.evaluate(splits["validation"], metric_key_prefix="validation")
    test = trainer.predict(splits["test"], metric_key_prefix="test")
    results = {
        "train": train_result.metrics,
        "validation": validation,
        "test": test.metrics,
        "data": metadata,
        "seed": training_args.seed,
        "wall_time_s": time.time() - started,
    }
    if trainer.is_world_process_zero():
        Path(training_args.output_dir, "results.json").write_text(json.dumps(results, indent=2, default=str))
        check_reload(training_args.output_dir, splits["test"], collator.for_evaluation(), test.predictions)
        logger.info(
            "test r2 = %.3f (validation r2 = %.3f), %.0f s; model in %s",
            test.metrics["test_r2"],
            validation["validation_r2"],
            results["wall_time_s"],
            training_args.output_dir,
        )
    return results


def check_reload(output_dir: str, test_split: datasets.Dataset, collator: MaskingCollator, predictions) -> None:
    """Reloads the saved model through `AutoModelForSequenceClassification` and checks it predicts the same."""
    import torch

    model = AutoModelForSequenceClassification.from_pretrained(output_dir).eval()
    batch = collator([test_split[i] for i in range(min(8, len(test_split)))])
    inputs = {key: value for key, value in batch.items() if key != "labels"}
    with torch.no_grad():
        reloaded = model(**inputs).logits.numpy().reshape(len(batch["input_ids"]), -1)
    expected = np.asarray(predictions).reshape(len(test_split), -1)[: len(reloaded)]
    difference = float(np.abs(reloaded - expected).max())
    if difference > 1e-4:
        raise RuntimeError(f"the reloaded checkpoint in {output_dir} predicts differently (max |diff| {difference:g})")
    logger.info(
        "reloaded %s with AutoModelForSequenceClassification: same predictions (max |diff| %.1e)",
        output_dir,
        difference,
    )
