"""The training recipe behind `accelerate launch train.py`: data, model, Trainer, honest evaluation, reports, Hub."""

import logging
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import datasets
import numpy as np
import pyarrow.compute
import safetensors.torch
import torch
import transformers
from transformers import (
    AutoModelForSequenceClassification,
    EarlyStoppingCallback,
    EvalPrediction,
    TrainerCallback,
    TrainerState,
    set_seed,
)

from ..allocator import keep_freed_memory
from ..data import DatasetMetadata, SplitSpec, build_dataset_dict, generate_promoters, load_dataset_dir
from ..data.atomic import write_json
from ..data.dataset_dict import owned_name, remove_abandoned
from ..data.standardization import in_data_units, standardize
from ..data_collators import MaskingCollator, MaskingEpochCallback
from ..modeling import FAMILIES, AminoAcidTokenizer
from ..provenance import source_revision, versions
from .arguments import DataArguments, ExpressionTrainingArguments, MaskingArguments
from .baseline import baseline_on_splits
from .checkpoints import (
    LOCK_FILE,
    RUN_IDENTITY_FILE,
    TRAINER_STATE_FILE,
    claim_output_dir,
    last_complete_checkpoint,
    lock_output_dir,
    run_identity,
    training_had_finished,
    training_seconds_until,
)
from .metrics import fit_calibration
from .model_card import ModelCardFacts, render_model_card
from .recipe_parser import COMMAND, command_line, parse_arguments, recipes_in_force
from .recipe_parser import recipe_flags as recipe_flags  # imported from here by the study specification
from .reporting import data_fingerprint, plot_predictions, write_predictions
from .trainer import (
    ExpressionTrainer,
    TrainingClock,
    bound_hub_requests,
    build_model,
    metrics_in_original_units,
    push_final_model,
    record_model_facts,
    tokenizer_for,
)

logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
SCRATCH_PREFIX = "expression-perceiver-"  # generated data of a run, in the system's temporary folder


def synthetic_splits(data_args: DataArguments, scratch: str) -> tuple[datasets.DatasetDict, DatasetMetadata]:
    """Generated promoters with a planted signal (see `expression_perceiver.data.synthetic`), split 80/10/10."""
    promoters = generate_promoters(data_args.synthetic_num_genes, data_args.synthetic_length, data_args.synthetic_seed)
    columns = promoters.to_dict()
    records = [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]
    return build_dataset_dict(
        lambda: records,
        cache_dir=scratch,
        alphabet="dna",
        source=f"synthetic promoters (n={len(records)}, {data_args.synthetic_length} bases, "
        f"seed {data_args.synthetic_seed})",
        feature_names=[f"feature_{i}" for i in range(promoters.features.shape[1])],
        split=SplitSpec(method="random", seed=data_args.synthetic_seed),
    )


def load_splits(data_args: DataArguments, scratch: str) -> tuple[datasets.DatasetDict, DatasetMetadata]:
    if data_args.dataset_dir is None:
        return synthetic_splits(data_args, scratch)
    return load_dataset_dir(data_args.dataset_dir)


def label_scale(metadata: DatasetMetadata, standardize: bool) -> tuple[list[float], list[float]]:
    mean, std = np.atleast_1d(metadata.label_mean).astype(float), np.atleast_1d(metadata.label_std).astype(float)
    if not standardize:
        mean, std = np.zeros_like(mean), np.ones_like(std)
    return mean.tolist(), std.tolist()


def feature_means(train: datasets.Dataset) -> list[float] | None:
    """The training split's mean of each per-gene feature (stored in the model's config), None without features."""
    if "features" not in train.column_names:
        return None
    features = np.asarray(train["features"], dtype=np.float64)
    return features.mean(axis=0).tolist() if features.ndim == 2 and features.shape[1] else None


def with_training_columns(split: datasets.Dataset, mean: list[float], std: list[float]) -> datasets.Dataset:
    """Adds `idx` (the row, which keys reproducible masks), `length` (for length-grouped batches) and `labels`
    (standardised) to a split."""
    labels = standardize(split["label"], mean, std)
    split = split.add_column("idx", np.arange(len(split)))
    split = split.add_column("length", padded_cost_length(split))
    values = labels[:, 0] if labels.shape[1] == 1 else labels
    return split.add_column("labels", values.tolist())


def padded_cost_length(split: datasets.Dataset) -> np.ndarray:
    """The length that drives padding: the longer of the promoter and, for the Protein&DNAPerceiver, the protein."""
    lengths = pyarrow.compute.utf8_length(split.data.column("sequence")).to_numpy()
    if "protein_sequence" in split.column_names:
        lengths = np.maximum(lengths, pyarrow.compute.utf8_length(split.data.column("protein_sequence")).to_numpy())
    return lengths


def prepare_splits(splits, mean, std, max_eval_samples: int | None) -> datasets.DatasetDict:
    prepared = {name: with_training_columns(splits[name], mean, std) for name in SPLITS}
    if max_eval_samples:
        for name in ("validation", "test"):
            prepared[name] = prepared[name].select(range(min(max_eval_samples, len(prepared[name]))))
    return datasets.DatasetDict(prepared)


def masking_collator(masking_args: MaskingArguments, tokenizer, model_type: str, seed: int) -> MaskingCollator:
    """The training batches' collator; its `for_evaluation()` copy leaves validation and test inputs untouched."""
    return MaskingCollator(
        tokenizer=tokenizer,
        masking=masking_args.settings(),
        seed=seed,
        protein_tokenizer=AminoAcidTokenizer() if FAMILIES[model_type].reads_protein else None,
    )


def check_alphabet(model_type: str, metadata: DatasetMetadata, data_args: DataArguments) -> None:
    """A DNA model reads promoters and a protein model proteins: the other alphabet would become unknown letters."""
    expected = FAMILIES[model_type].alphabet
    if metadata.alphabet != expected:
        where = data_args.dataset_dir or "the generated data"
        suggestion = "protein_perceiver" if metadata.alphabet == "protein" else "dna_perceiver"
        raise ValueError(
            f"{where}: its sequences are {metadata.alphabet} (field `alphabet` of its metadata) but a {model_type} "
            f"reads {expected}; choose --model_type {suggestion}"
        )


def check_mask_fits(collator: MaskingCollator, train_split: datasets.Dataset) -> None:
    """A span as long as the longest training sequence hides every position of every sequence: refuse it."""
    if collator.strategy == "none" or collator.mask_length is None:
        return
    longest = int(pyarrow.compute.max(pyarrow.compute.utf8_length(train_split.data.column("sequence"))).as_py())
    if collator.mask_length * collator.num_spans >= longest:
        raise ValueError(
            f"--mask_length {collator.mask_length:,} covers the whole of every training sequence (the longest has "
            f"{longest:,} positions); use a shorter span or --mask_fraction"
        )


def resume_checkpoint(training_args: ExpressionTrainingArguments) -> Path | None:
    """`--resume_from_checkpoint auto` (or true) continues from the last complete checkpoint in the output dir
    (which `claim_output_dir` has made sure belongs to this run); a path names the checkpoint itself."""
    value = training_args.resume_from_checkpoint
    if value is None or str(value).lower() in ("", "false", "none"):
        return None
    if str(value).lower() in ("auto", "true"):
        last = last_complete_checkpoint(training_args.output_dir) if Path(training_args.output_dir).is_dir() else None
        if last is None:
            logger.info("no complete checkpoint in %s: starting from scratch", training_args.output_dir)
        return last
    if not Path(value).is_dir():
        raise ValueError(f"--resume_from_checkpoint {value}: no such checkpoint folder")
    return Path(value)


def train_or_restore(trainer: ExpressionTrainer, checkpoint: Path | None) -> None:
    """Trains (from `checkpoint` when given), or, when the checkpoint shows training had already finished (the run
    was stopped while evaluating or writing its reports), restores its state and selected weights without training
    any further, so that a resumed run ends exactly as the uninterrupted one."""
    if checkpoint is None or not training_had_finished(checkpoint):
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        return
    trainer.state = TrainerState.load_from_json(str(checkpoint / TRAINER_STATE_FILE))
    selected = checkpoint
    if trainer.args.load_best_model_at_end and trainer.state.best_model_checkpoint:
        selected = checkpoint.parent / Path(trainer.state.best_model_checkpoint).name  # the folder may have moved
    logger.info("training had finished at %s; evaluating the selected checkpoint %s", checkpoint.name, selected.name)
    trainer.model.load_state_dict(safetensors.torch.load_file(str(selected / "model.safetensors")))


def training_report(state: TrainerState, args: ExpressionTrainingArguments, seconds: float) -> dict:
    """The whole run's training, resumed parts included: epochs, steps, mean training loss, the selected epoch and
    why training stopped."""
    logged = [entry for entry in state.log_history if "loss" in entry]
    steps_covered = np.diff([0] + [entry["step"] for entry in logged])  # each logged loss averages the steps since
    mean_loss = float(np.average([entry["loss"] for entry in logged], weights=steps_covered)) if logged else None
    evaluations = [entry for entry in state.log_history if f"eval_{args.metric_for_best_model}" in entry]
    selected = next((entry for entry in evaluations if entry["step"] == state.best_global_step), None)
    if state.global_step >= state.max_steps:
        stopped = (
            f"completed max_steps ({args.max_steps})"
            if args.max_steps > 0
            else f"completed num_train_epochs ({args.num_train_epochs:g})"
        )
    elif args.early_stopping_patience is not None:
        stopped = (
            f"early stopping: validation {args.metric_for_best_model} did not improve for "
            f"{args.early_stopping_patience} evaluations"
        )
    else:
        stopped = "stopped by a callback before num_train_epochs"
    return {
        "epoch": float(state.epoch or 0.0),
        "global_step": state.global_step,
        "train_loss": mean_loss,
        "training_seconds": seconds,
        "selected_epoch": float(selected["epoch"]) if selected else None,
        f"selected_validation_{args.metric_for_best_model}": state.best_metric,
        "stopped": stopped,
        "evaluations": len(evaluations),
    }


def early_stopping(training_args: ExpressionTrainingArguments) -> list[TrainerCallback]:
    if training_args.early_stopping_patience is None:
        return []
    return [EarlyStoppingCallback(early_stopping_patience=training_args.early_stopping_patience)]


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({torch.get_num_threads()} threads)"


def main(
    argv: list[str] | None = None,
    default_recipe: Path | None = None,
    callbacks: list[TrainerCallback] = (),
    prog: str = COMMAND,
) -> dict:
    """One training run: `prog [recipe.yaml ...] [--flag value ...]`, with `default_recipe` (when given) as the base
    when no recipe file is given (`train.py` passes its demo recipe; `expression-perceiver train` none)."""
    keep_freed_memory()
    model_args, data_args, masking_args, training_args, recipe = parse_arguments(argv, default_recipe, prog)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    transformers.utils.logging.set_verbosity(training_args.get_process_log_level())
    if training_args.should_log:
        logger.info("%s", recipes_in_force(argv, default_recipe))
    set_seed(training_args.seed)
    if training_args.push_to_hub:
        bound_hub_requests(training_args.hub_request_timeout)
    started = time.time()
    revision = source_revision()  # the code this run loads now, whatever is committed while it trains
    remove_abandoned(tempfile.gettempdir(), SCRATCH_PREFIX)  # left by killed runs
    scratch = tempfile.TemporaryDirectory(prefix=owned_name(SCRATCH_PREFIX) + "-")

    # Data: splits, label scale from the train split only, standardised training targets.
    raw_splits, metadata = load_splits(data_args, scratch.name)
    mean, std = label_scale(metadata, data_args.standardize_labels)
    splits = prepare_splits(raw_splits, mean, std, data_args.max_eval_samples)
    fingerprint = data_fingerprint(raw_splits)

    # Model, tokenizer and collators: masking augmentation on training batches only.
    model = build_model(model_args, len(mean), metadata.num_features, mean, std, feature_means(raw_splits["train"]))
    check_alphabet(model.config.model_type, metadata, data_args)
    tokenizer = tokenizer_for(model.config.model_type)
    collator = masking_collator(masking_args, tokenizer, model.config.model_type, training_args.seed)
    check_mask_fits(collator, splits["train"])
    record_model_facts(model, metadata, collator.masking.to_dict(), training_args.seed, fingerprint)
    logger.info(
        "%s with %d parameters; masking: %s", type(model).__name__, model.num_parameters(), collator.masking.describe()
    )

    # The output folder belongs to this run alone; a resume continues this run's last complete checkpoint only.
    arguments = run_arguments(model_args, data_args, masking_args, training_args)
    identity = arguments_identity(
        model_args, data_args, masking_args, training_args, training_args.world_size, fingerprint
    )
    new_folder = not Path(training_args.output_dir).exists()
    lock = lock_output_dir(training_args.output_dir) if training_args.should_save else None
    try:
        claim_output_dir(
            training_args.output_dir, identity, training_args.overwrite_output_dir, write=training_args.should_save
        )
        checkpoint = resume_checkpoint(training_args)
        clock = TrainingClock(training_seconds_until(checkpoint))

        trainer = ExpressionTrainer(
            model=model,
            args=training_args,
            train_dataset=splits["train"],
            eval_dataset=splits["validation"],
            processing_class=tokenizer,
            data_collator=collator,
            eval_data_collator=collator.for_evaluation(),
            compute_metrics=metrics_in_original_units(mean, std, metadata.label_names),
            callbacks=[MaskingEpochCallback(collator), *early_stopping(training_args), clock, *callbacks],
        )
        train_or_restore(trainer, checkpoint)
        # Early stopping watches training's evaluations; the final ones below carry other metric names.
        trainer.remove_callback(EarlyStoppingCallback)

        # Honest evaluation: the validation split selected the model; the test split is evaluated once, here.
        validation = trainer.evaluate(splits["validation"], metric_key_prefix="validation")
        calibration = calibrate_on_validation(trainer, splits["validation"]) if training_args.calibrate else None
        test = trainer.predict(splits["test"], metric_key_prefix="test")
        tested = calibrated(test.predictions, calibration)
        predictions = in_data_units(tested, mean, std)
        observed = in_data_units(test.label_ids, mean, std)
        test_metrics = strip_prefix(test.metrics, "test_")
        if calibration is not None:  # the numbers of what the model now predicts; the raw ones beside them
            metrics = metrics_in_original_units(mean, std, metadata.label_names)
            calibrated_metrics = metrics(EvalPrediction(predictions=tested, label_ids=test.label_ids))
            test_metrics = {**{k: v for k, v in test_metrics.items() if k != "loss"}, **calibrated_metrics}
        results = {
            "validation": strip_prefix(validation, "validation_"),
            "test": test_metrics,
            "test_uncalibrated": strip_prefix(test.metrics, "test_") if calibration is not None else None,
            "calibration": calibration,
            "train": training_report(trainer.state, training_args, clock.seconds),
            "selection": "checkpoint selected on the validation split; test split evaluated once, after training",
            "precision": evaluation_precision_name(training_args),
            "kmer_baseline": baseline_on_splits(raw_splits, metadata.alphabet) if data_args.kmer_baseline else None,
            "seed": training_args.seed,
            "recipe": recipe,
            "command": command_line(prog, sys.argv[1:] if argv is None else argv),
            "arguments": arguments,
            "identity": identity,
            "data": {**metadata.to_dict(), "fingerprint": fingerprint},
            "versions": versions(),
            "source_revision": revision,
            "device": device_name(),
            "world_size": training_args.world_size,
            "wall_time_s": time.time() - started,
        }
        trainer.model_card = render_model_card(card_facts(trainer, results, metadata, collator, model_args))
        # The selected model, tokenizer, remote code and model card (rank 0 only), without the push that a plain
        # `save_model()` makes: the push comes last, once every local result is written.
        trainer.save_model(_internal_call=True)
        if trainer.is_world_process_zero():
            check_reload(training_args, splits["test"], collator.for_evaluation(), test.predictions)
            write_run_outputs(
                training_args.output_dir, results, raw_splits["test"]["gene_id"], predictions, observed, metadata
            )
            logger.info(
                "test r2 = %.4f (validation r2 = %.4f) in %.0f s; model in %s",
                results["test"]["r2"], results["validation"]["r2"], results["wall_time_s"], training_args.output_dir,
            )  # fmt: skip
        if training_args.push_to_hub:  # last: a failed push leaves every local result in place
            push_final_model(trainer, commit_message=f"Final model: test r2 {results['test']['r2']:.4f}")
        return results
    except BaseException:
        if new_folder and lock is not None:
            remove_if_nothing_written(Path(training_args.output_dir))
        raise
    finally:
        if lock is not None:
            lock.close()  # the folder is free again (a killed process frees it too)
        scratch.cleanup()


def calibrate_on_validation(trainer: ExpressionTrainer, validation: datasets.Dataset) -> dict:
    """The line of the validation labels on the selected model's validation predictions (standardised units),
    stored in the model's config, which `predict`, the pipeline, variant effects, mutagenesis and attribute apply."""
    fitted_on = trainer.predict(validation, metric_key_prefix="calibration")
    calibration = fit_calibration(fitted_on.predictions, fitted_on.label_ids)
    trainer.model.config.calibration = calibration
    logger.info(
        "calibration on the validation split: observed = %s + %s x predicted (standardised)",
        ", ".join(f"{value:.4f}" for value in calibration["intercept"]),
        ", ".join(f"{value:.4f}" for value in calibration["slope"]),
    )
    return calibration


def calibrated(predictions: np.ndarray, calibration: dict | None) -> np.ndarray:
    """Standardised predictions through the calibration line (unchanged without one)."""
    if calibration is None:
        return predictions
    values = np.asarray(predictions, dtype=np.float64).reshape(len(predictions), -1)
    return values * np.asarray(calibration["slope"]) + np.asarray(calibration["intercept"])


def remove_if_nothing_written(output_dir: Path) -> None:
    """A run that fails before its first checkpoint leaves no folder of its own behind (only its claim and lock)."""
    if {entry.name for entry in output_dir.iterdir()} <= {RUN_IDENTITY_FILE, LOCK_FILE}:
        shutil.rmtree(output_dir, ignore_errors=True)


def strip_prefix(metrics: dict, prefix: str) -> dict:
    return {key.removeprefix(prefix): value for key, value in metrics.items()}


def card_facts(trainer, results: dict, metadata: DatasetMetadata, collator, model_args) -> ModelCardFacts:
    args = trainer.args
    config = trainer.model.config
    reads_protein = FAMILIES[config.model_type].reads_protein
    return ModelCardFacts(
        repo_id=args.hub_model_id or Path(args.output_dir).name,
        model_type=config.model_type,
        architecture=type(trainer.model).__name__,
        parameters=trainer.model.num_parameters(),
        label_names=metadata.label_names,
        units=", ".join(metadata.label_units),
        data_source=metadata.source,
        data_fingerprint=results["data"]["fingerprint"],
        split=describe_split(metadata),
        metrics={"validation": results["validation"], "test": results["test"]},
        masking=collator.masking.describe(),
        recipe=f"`{results['recipe']}`",
        command=results["command"],
        seed=args.seed,
        epochs=float(results["train"]["epoch"]),
        wall_time_s=results["train"]["training_seconds"],
        device=f"{results['device']} x {args.world_size}" if args.world_size > 1 else results["device"],
        max_length=config.dna_config.max_sequence_length if reads_protein else config.max_sequence_length,
        protein_max_length=config.protein_config.max_sequence_length if reads_protein else None,
        feature_names=metadata.feature_names,
        baseline=results["kmer_baseline"],
    )


def describe_split(metadata: DatasetMetadata) -> str:
    """'random by gene, seed 0, fractions [0.8, 0.1, 0.1] (train 128, validation 16, test 16)'."""
    how = ", ".join(str(value) if key == "method" else f"{key} {value}" for key, value in metadata.split.items())
    return f"{how} ({', '.join(f'{name} {count:,}' for name, count in metadata.counts.items())})"


def write_run_outputs(output_dir, results, gene_ids, predictions, observed, metadata: DatasetMetadata) -> None:
    output = Path(output_dir)
    write_json(output / "results.json", results)
    write_predictions(output / "test_predictions.tsv", gene_ids, predictions, observed, metadata.label_names)
    plot_predictions(output / "test_scatter.png", predictions, observed, metadata.label_names, output.name)


# How far a reloaded model's outputs (z-scores) may lie from the evaluation's, per unit of scale: fp32 sums in a
# different order; bf16 keeps 8 significant bits (rounding 2**-8) and fp16 11, so a few roundings of the output's
# size. A reordered prediction table differs by about one standard deviation, far beyond either.
RELOAD_TOLERANCE = {torch.float32: 1e-3, torch.bfloat16: 2.0**-5, torch.float16: 2.0**-8}


def evaluation_precision(args: ExpressionTrainingArguments) -> torch.dtype:
    """The precision the Trainer evaluates in: bf16/fp16 autocast when mixed precision is on, else fp32."""
    return torch.bfloat16 if args.bf16 else torch.float16 if args.fp16 else torch.float32


def evaluation_precision_name(args: ExpressionTrainingArguments) -> str:
    return {torch.bfloat16: "bf16 mixed precision", torch.float16: "fp16 mixed precision"}.get(
        evaluation_precision(args), "fp32"
    )


def check_reload(
    args: ExpressionTrainingArguments, test_split: datasets.Dataset, collator: MaskingCollator, predictions
) -> None:
    """Reloads the saved model through `AutoModelForSequenceClassification` and checks it predicts what the
    evaluation predicted, like with like: on the same device, under the same autocast precision, within a tolerance
    set by that precision."""
    model = AutoModelForSequenceClassification.from_pretrained(args.output_dir).to(args.device).eval()
    batch = collator([test_split[i] for i in range(min(8, len(test_split)))])
    inputs = {key: value.to(args.device) for key, value in batch.items() if key != "labels"}
    precision = evaluation_precision(args)
    autocast = torch.autocast(args.device.type, dtype=precision, enabled=precision != torch.float32)
    with torch.no_grad(), autocast:
        reloaded = model(**inputs).logits.float().cpu().numpy().reshape(len(batch["input_ids"]), -1)
    expected = np.asarray(predictions, dtype=np.float64).reshape(len(test_split), -1)[: len(reloaded)]
    difference = float(np.abs(reloaded - expected).max())
    tolerance = RELOAD_TOLERANCE[precision] * max(1.0, float(np.abs(expected).max()))
    if difference > tolerance:
        raise RuntimeError(
            f"the reloaded checkpoint in {args.output_dir} predicts differently (max |diff| {difference:g}, "
            f"tolerance {tolerance:g} for {evaluation_precision_name(args)})"
        )
    logger.info("reloaded %s through AutoModelForSequenceClassification: same predictions (max |diff| %.1e, %s)",
                args.output_dir, difference, evaluation_precision_name(args))  # fmt: skip


def run_arguments(model_args, data_args, masking_args, training_args: ExpressionTrainingArguments) -> dict:
    """A run's arguments by group, as `results.json` records them."""
    return {
        "model": asdict(model_args),
        "data": asdict(data_args),
        "masking": asdict(masking_args),
        "training": training_args.to_dict(),
    }


def arguments_identity(
    model_args,
    data_args,
    masking_args,
    training_args: ExpressionTrainingArguments,
    world_size: int,
    data_fingerprint: str,
) -> dict:
    """The identity (`checkpoints.run_identity`) of the run these arguments make on `world_size` processes: what a
    run claims its output folder with, and what a study expects a finished cell's `results.json` to carry."""
    global_batch = training_args.per_device_train_batch_size * world_size * training_args.gradient_accumulation_steps
    arguments = run_arguments(model_args, data_args, masking_args, training_args)
    return run_identity(arguments, global_batch, data_fingerprint)
