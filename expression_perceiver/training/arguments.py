"""Arguments of `train.py`, parsed by `HfArgumentParser` from the command line or a YAML/JSON recipe."""

import logging
from dataclasses import asdict, dataclass, field
from typing import Literal

import torch
from transformers import TrainingArguments

from ..data_collators.masking import MaskingMode, MaskingSettings, MaskingStrategy
from ..modeling import MODEL_TYPES

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    """Which model to train: a fresh one of `model_type` (sized by `config_overrides`) or a checkpoint."""

    model_type: Literal[MODEL_TYPES] = field(default="dna_perceiver", metadata={"help": "The model family."})
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Checkpoint (directory or Hub id) to fine-tune instead of a fresh model."}
    )
    config_overrides: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated config fields of a fresh model, e.g. 'num_latents=64,latent_dim=64,"
            "conv_tower_channels=[32,32]'. Unset fields keep the authors' values."
        },
    )
    trust_remote_code: bool = field(
        default=False,
        metadata={
            "help": "Accepted for compatibility and not needed: checkpoints load with this package's own classes, "
            "never with code from the checkpoint."
        },
    )

    def __post_init__(self):
        if self.model_type not in MODEL_TYPES:
            raise ValueError(f"--model_type must be one of {', '.join(MODEL_TYPES)}, got {self.model_type!r}")


@dataclass
class DataArguments:
    """Where the examples come from: a dataset prepared by `expression-perceiver prepare`, or generated ones."""

    dataset_dir: str | None = field(
        default=None, metadata={"help": "Dataset folder written by `expression-perceiver prepare`."}
    )
    synthetic_num_genes: int = field(
        default=1_500, metadata={"help": "Without --dataset_dir: number of synthetic promoters, split 80/10/10."}
    )
    synthetic_length: int = field(default=1_000, metadata={"help": "Without --dataset_dir: bases per promoter."})
    synthetic_seed: int = field(default=0, metadata={"help": "Without --dataset_dir: seed of the generator."})
    standardize_labels: bool = field(
        default=True,
        metadata={"help": "Train on labels standardised with the train split's mean and std; report original units."},
    )
    max_eval_samples: int | None = field(default=None, metadata={"help": "Truncate validation/test (debugging)."})
    kmer_baseline: bool = field(
        default=False,
        metadata={"help": "Also fit the k-mer ridge baseline on the same splits and report it next to the model."},
    )

    def __post_init__(self):
        if self.max_eval_samples is not None and self.max_eval_samples < 1:
            raise ValueError(f"--max_eval_samples must be at least 1, got {self.max_eval_samples}")
        if self.dataset_dir is None and self.synthetic_num_genes < 10:
            raise ValueError(
                f"--synthetic_num_genes must be at least 10 (80/10/10 split), got {self.synthetic_num_genes}"
            )


@dataclass
class MaskingArguments:
    """The masking augmentation applied to training batches, as `--mask_*` flags: `settings()` is the
    `MaskingSettings` they stand for (field `x` of the settings is flag `--mask_x`, `num_spans` is `--mask_num_spans`),
    and `masking_flags` writes settings back as flags (a study's cells)."""

    mask_strategy: MaskingStrategy = field(
        default="none", metadata={"help": "none, random_span, first, middle or last."}
    )
    mask_mode: MaskingMode = field(default="mask", metadata={"help": "mask (replace positions) or drop (remove them)."})
    mask_length: int | None = field(
        default=None, metadata={"help": "Positions per span (default 1,000 for random_span, 10,000 otherwise)."}
    )
    mask_fraction: float | None = field(
        default=None,
        metadata={
            "help": "Span length as a fraction of each sequence's own length (0 < f <= 1), instead of --mask_length: "
            "one setting then serves 60-base promoters, 20,000-base windows and proteins of any length."
        },
    )
    mask_num_spans: int = field(default=1, metadata={"help": "Spans per sequence for random_span."})
    mask_token: str = field(default="[MASK]", metadata={"help": "Token written over masked positions: [MASK] or N."})

    def settings(self) -> MaskingSettings:
        """The settings these flags stand for (checked there: a bad combination is one ValueError)."""
        return MaskingSettings.from_arguments(asdict(self))


def masking_flags(settings: MaskingSettings) -> list[str]:
    """The `--mask_*` flags that give `settings` back (`MaskingArguments.settings()`); defaults are left out."""
    if settings.strategy == "none":
        return ["--mask_strategy", "none"]
    if settings.mask_fraction is not None:
        size = ["--mask_fraction", repr(settings.mask_fraction)]
    else:
        size = ["--mask_length", str(settings.mask_length)]
    flags = ["--mask_strategy", settings.strategy, "--mask_mode", settings.mode, *size]
    if settings.num_spans != 1:
        flags += ["--mask_num_spans", str(settings.num_spans)]
    if settings.mask_token != "[MASK]":
        flags += ["--mask_token", settings.mask_token]
    return flags


@dataclass
class ExpressionTrainingArguments(TrainingArguments):
    """`TrainingArguments` with defaults suited to expression regression: select on validation r2 each epoch."""

    output_dir: str | None = field(default="outputs/dna_perceiver", metadata={"help": "Where checkpoints go."})
    eval_strategy: str = field(default="epoch", metadata={"help": "When to evaluate on the validation split."})
    save_strategy: str = field(default="epoch", metadata={"help": "When to write a checkpoint."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Checkpoints kept (best one always kept)."})
    load_best_model_at_end: bool = field(default=True, metadata={"help": "Select the best validation checkpoint."})
    metric_for_best_model: str | None = field(default="r2", metadata={"help": "Validation metric that selects."})
    greater_is_better: bool | None = field(default=True, metadata={"help": "Whether higher metric is better."})
    remove_unused_columns: bool = field(default=False, metadata={"help": "The collator reads the raw columns."})
    logging_strategy: str = field(default="epoch", metadata={"help": "When to log the training loss."})
    early_stopping_patience: int | None = field(
        default=None, metadata={"help": "Stop after this many evaluations without a better validation metric."}
    )
    calibrate: bool = field(
        default=False,
        metadata={
            "help": "Fit observed on predicted labels (a line) on the validation split after selection and store it "
            "in config.json (calibration): predict, the pipeline, variant effects, mutagenesis and attribute apply "
            "it; the test metrics are those of the calibrated predictions."
        },
    )
    hub_request_timeout: float = field(
        default=300.0,
        metadata={"help": "Seconds a Hub request may wait for the server before it fails (a stalled server ends)."},
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Start afresh in an output dir that holds another run (its checkpoints and results go)."},
    )
    # Fields of `TrainingArguments` declared again for their help only (same type and default): how this recipe
    # uses them.
    max_steps: int = field(
        default=-1, metadata={"help": "Total optimizer steps; when positive, it replaces --num_train_epochs."}
    )
    resume_from_checkpoint: str | None = field(
        default=None,
        metadata={
            "help": "auto: continue from the last complete checkpoint in --output_dir (from scratch if none); or the "
            "path of a checkpoint folder of this run."
        },
    )
    disable_tqdm: bool | None = field(
        default=None,
        metadata={
            "help": "Progress bar off (true) or on (false). Unset: on when stderr is a terminal, off otherwise (a log "
            "file gets the logged losses as lines, not carriage-return bars)."
        },
    )
    logging_steps: float = field(
        default=500,
        metadata={
            "help": "With --logging_strategy steps: log the training loss every N optimizer steps (below 1: that "
            "fraction of all steps)."
        },
    )

    def __post_init__(self):
        if self.max_steps <= 0 and self.num_train_epochs <= 0:
            raise ValueError(
                f"--num_train_epochs must be positive (got {self.num_train_epochs:g}): a run that trains nothing "
                "would report an untrained model"
            )
        self.fall_back_to_cpu_without_accelerator()
        super().__post_init__()

    def fall_back_to_cpu_without_accelerator(self) -> None:
        """Mixed-precision recipes are written for GPUs; on a machine without one they run on the CPU (bf16 through
        CPU autocast, fp16 off) with a note, instead of stopping at 'Your setup doesn't support bf16/gpu'."""
        if self.use_cpu or not (self.bf16 or self.fp16) or torch.accelerator.is_available():
            return
        logger.warning(
            "no GPU or other accelerator found: training on the CPU%s (expect it to be far slower than on a GPU)",
            " with bf16 autocast" if self.bf16 else ", fp16 turned off (it needs a GPU)",
        )
        self.use_cpu = True
        self.fp16 = False
