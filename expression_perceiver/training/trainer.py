"""Trainer wiring: model construction, label scaling, metrics in original units, and the evaluation collator."""

import dataclasses
import hashlib
import itertools
import json
import logging
import re
import threading
import time
from pathlib import Path

import httpx2  # the HTTP client `huggingface_hub` is built on
import yaml
from torch.utils.data import SequentialSampler
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    EvalPrediction,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
)
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..data.dataset_dict import DatasetMetadata
from ..data.standardization import in_data_units
from ..formats import PROTEIN_TOKENIZER_FOLDER
from ..hub import ModelLocationError, first_line, looks_local, resolve_model
from ..modeling import FAMILIES, AminoAcidTokenizer, DNAPerceiverConfig
from ..modeling.checkpoints import read_checkpoint
from .arguments import ModelArguments
from .checkpoints import CLOCK_FILE
from .metrics import compute_expression_metrics

logger = logging.getLogger(__name__)


class ExpressionTrainer(Trainer):
    """`Trainer` whose evaluation and prediction batches go through `eval_data_collator` (no masking augmentation
    on validation or test data) while training batches go through `data_collator`."""

    def __init__(self, *args, eval_data_collator=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.eval_data_collator = eval_data_collator or self.data_collator
        self.model_card: str | None = None  # rendered once test results exist; saved and pushed as README.md

    def _determine_best_metric(self, metrics: dict[str, float], trial) -> bool:
        """No checkpoint is selected inside the learning-rate warm-up: an early evaluation there can score best on
        a short run and leave a model whose predictions sit off the labels' scale (biased, too narrow). Evaluations
        inside it are logged; selection and early stopping's patience start once it is over."""
        warmup = self.args.get_warmup_steps(self.state.max_steps)
        if self.state.global_step < warmup and self.state.global_step < self.state.max_steps:
            return False
        return super()._determine_best_metric(metrics, trial)

    def _issue_warnings_after_load(self, load_result) -> None:
        """Weights read back from a checkpoint (resuming, or selecting the best one) must fill the model exactly:
        `Trainer` loads them non-strictly and only logs what is missing, which would leave those weights as they
        were and give silently wrong numbers."""
        check_loaded_weights(load_result)

    def _get_eval_sampler(self, eval_dataset):
        """Evaluation keeps the split's order, even with length-grouped training batches, so that predictions line
        up with the split's gene ids."""
        return None if eval_dataset is None else SequentialSampler(eval_dataset)

    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        super()._save(output_dir, state_dict)
        output_dir = Path(output_dir or self.args.output_dir)
        if FAMILIES[self.model.config.model_type].reads_protein:
            AminoAcidTokenizer().save_pretrained(output_dir / PROTEIN_TOKENIZER_FOLDER)
        if self.model_card is not None:
            (output_dir / "README.md").write_text(self.model_card)

    def create_model_card(self, *args, **kwargs) -> None:
        if self.model_card is None:
            return super().create_model_card(*args, **kwargs)
        if self.is_world_process_zero():
            (Path(self.args.output_dir) / "README.md").write_text(self.model_card)

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        """A checkpoint push that fails (the Hub down, a dropped connection) costs the run nothing: it is logged and
        training goes on; the final push, after every local result is written, reports what did not reach the Hub."""
        try:
            super()._push_from_checkpoint(checkpoint_folder)
        except Exception as error:  # any client or network error: the checkpoint stays local
            logger.warning("pushing %s to the Hub failed (%s: %s); it stays local", checkpoint_folder,
                           type(error).__name__, error)  # fmt: skip

    def _get_dataloader(self, dataset, description, batch_size, sampler_fn=None, is_training=False, **kwargs):
        training_collator = self.data_collator
        if not is_training:
            self.data_collator = self.eval_data_collator
        try:
            return super()._get_dataloader(dataset, description, batch_size, sampler_fn, is_training, **kwargs)
        finally:
            self.data_collator = training_collator


class TrainingClock(TrainerCallback):
    """Training seconds of the whole run across interruptions: each checkpoint records the time spent up to it, and
    a resumed run starts its clock there."""

    def __init__(self, seconds_before: float = 0.0):
        self.seconds_before = seconds_before
        self.started: float | None = None

    @property
    def seconds(self) -> float:
        return self.seconds_before + (time.monotonic() - self.started if self.started is not None else 0.0)

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.monotonic()

    def on_save(self, args, state, control, **kwargs):
        checkpoint = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if state.is_world_process_zero and checkpoint.is_dir():
            (checkpoint / CLOCK_FILE).write_text(json.dumps({"training_seconds": self.seconds}) + "\n")


class HubPushFailed(RuntimeError):
    """The final push failed; every local result had been written before it."""


def check_loaded_weights(load_result, where: str = "the checkpoint") -> None:
    """Raises when a state dict did not fill the model exactly, naming the first keys either way."""
    missing, unexpected = list(load_result.missing_keys), list(load_result.unexpected_keys)
    if missing or unexpected:
        raise ValueError(
            f"{where} does not match the model: {len(missing)} weights missing (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})"
        )


# A commit of the Hub API (`create_commit`, and each commit of `upload_folder`), in its URL-encoded form.
COMMIT_ROUTE = re.compile(r"^/api/(?P<kind>models|datasets|spaces)/(?P<repo>.+)/commit/(?P<revision>[^/]+)$")
# Answers after which `huggingface_hub` sends a request again: the Hub may have applied the commit all the same.
RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class ConditionalCommitClient(httpx2.Client):
    """The HTTP client of `huggingface_hub` for pushes, under which a commit lands once however often it is sent.

    The client sends a commit again when its answer does not come (a timeout, a dropped connection, a 5xx), though
    the Hub may have applied it. Each commit that names no parent is therefore sent conditional on the branch head
    it was first sent on (`parentCommit`, what `create_commit(..., parent_commit=...)` sends), and every retry of the
    same payload on that same head: once one attempt has landed, the Hub refuses the others (412, the parent is no
    longer the head). A 412 whose commit is found in the branch's history just after that parent, under the same
    title, is answered as the success it stands for; after any other 412 (someone else committed meanwhile) the
    commit is sent on the new head, where an unconditional commit would have landed too."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._parents: dict[str, str] = {}  # a commit payload's digest -> the head its first attempt was sent on
        self._parents_lock = threading.Lock()

    def send(self, request: httpx2.Request, **kwargs) -> httpx2.Response:
        route = COMMIT_ROUTE.match(request.url.raw_path.decode().partition("?")[0])
        if request.method != "POST" or route is None or "create_pr" in request.url.params:
            return super().send(request, **kwargs)
        body = request.read()
        first_line, newline, operations = body.partition(b"\n")
        try:
            header = json.loads(first_line)
        except ValueError:  # not an NDJSON commit: the Hub answers it as it is
            return super().send(request, **kwargs)
        if header.get("key") != "header" or "parentCommit" in header.get("value", {}):
            return super().send(request, **kwargs)
        repository = f"{request.url.scheme}://{request.url.netloc.decode()}/api/{route['kind']}/{route['repo']}"
        revision, title = route["revision"], header["value"].get("summary", "")
        digest = hashlib.sha256(str(request.url).encode() + body).hexdigest()
        with self._parents_lock:
            parent = self._parents.get(digest)
        for _ in range(3):  # each round after the first: someone else committed between head and commit
            if parent is None:
                parent = self._head(repository, revision, request)
                if parent is None:  # the commit creates the branch: there is no head to be conditional on
                    return super().send(request, **kwargs)
                with self._parents_lock:
                    self._parents[digest] = parent
            header["value"]["parentCommit"] = parent
            headers = [(name, value) for name, value in request.headers.raw if name.lower() != b"content-length"]
            content = json.dumps(header).encode() + newline + operations
            conditional = httpx2.Request(
                "POST", request.url, headers=headers, content=content, extensions=request.extensions
            )
            response = super().send(conditional, **kwargs)  # an error leaves the parent for the retry
            if response.status_code != 412:
                if response.status_code not in RETRIED_STATUSES:
                    with self._parents_lock:
                        self._parents.pop(digest, None)
                return response
            landed = self._landed_after(repository, revision, parent, title, request)
            if landed is not None:
                with self._parents_lock:
                    self._parents.pop(digest, None)
                response.close()
                prefix = "" if route["kind"] == "models" else f"{route['kind']}/"
                commit_url = f"{request.url.scheme}://{request.url.netloc.decode()}/{prefix}{route['repo']}/commit"
                answer = {"success": True, "commitOid": landed, "commitUrl": f"{commit_url}/{landed}"}
                logger.info("a commit to %s landed before its answer was lost: %s", route["repo"], landed)
                return httpx2.Response(200, json={**answer, "pullRequestUrl": None}, request=request)
            parent = None
        return response

    def _head(self, repository: str, revision: str, request: httpx2.Request) -> str | None:
        """The commit `revision` points at, None when there is no such branch."""
        answer = self.get(f"{repository}/revision/{revision}", headers=self._authorization(request))
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        return answer.json()["sha"]

    def _landed_after(self, repository: str, revision: str, parent: str, title: str, request) -> str | None:
        """The commit titled `title` right after `parent` in the branch's history, if there is one."""
        answer = self.get(f"{repository}/commits/{revision}", headers=self._authorization(request))
        answer.raise_for_status()
        for newer, older in itertools.pairwise(answer.json()):  # newest first
            if older["id"] == parent:
                return newer["id"] if newer["title"] == title else None
        return None

    @staticmethod
    def _authorization(request: httpx2.Request) -> dict[str, str]:
        return {name: request.headers[name] for name in ("authorization", "user-agent") if name in request.headers}


def bound_hub_requests(timeout_s: float) -> None:
    """Gives every request of `huggingface_hub` in this process a read timeout (its default client waits forever),
    so that a stalled Hub ends a push with an error instead of hanging the run, and makes its commits conditional so
    that retrying one whose answer was lost does not commit it twice (`ConditionalCommitClient`)."""
    from huggingface_hub import set_client_factory
    from huggingface_hub.utils._http import hf_request_event_hook

    set_client_factory(
        lambda: ConditionalCommitClient(
            event_hooks={"request": [hf_request_event_hook]},
            follow_redirects=True,
            timeout=httpx2.Timeout(timeout_s, connect=min(timeout_s, 30.0)),
        )
    )


def push_final_model(trainer: Trainer, commit_message: str) -> None:
    """The last step of a run: push the selected model and its reports, or say how to push them again."""
    try:
        trainer.push_to_hub(commit_message=commit_message, blocking=True)
    except Exception as error:  # any client or network error: the local results are complete already
        repo_id = trainer.args.hub_model_id or Path(trainer.args.output_dir).name
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise HubPushFailed(
            f"pushing to the Hub repository {repo_id} failed ({type(error).__name__}: {reason}); the model, results "
            f"and predictions are complete in {trainer.args.output_dir}; push them again with "
            f"`hf upload {repo_id} {trainer.args.output_dir}`"
        ) from None


def tokenizer_for(model_type: str) -> PreTrainedTokenizerBase:
    """The tokenizer of a model's main input: nucleotides, or amino acids for the ProteinPerceiver."""
    return FAMILIES[model_type].tokenizer()


def parse_config_overrides(overrides: str | None) -> dict:
    """'num_latents=64,conv_tower_channels=[32, 32],use_conv_branch=false' as typed config fields."""
    fields = {}
    for item in re.split(r",(?![^\[]*\])", overrides or ""):  # commas inside [...] belong to a list
        if not item.strip():
            continue
        key, separator, value = item.partition("=")
        if not separator:
            raise ValueError(f"--config_overrides: {item.strip()!r} is not of the form field=value")
        fields[key.strip()] = yaml.safe_load(value)
    return fields


def check_config_fields(overrides: dict, config_class: type) -> None:
    """Rejects override names that are not fields of the configuration (a typo must not pass silently)."""
    known = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(
            f"--config_overrides: unknown config field(s) {', '.join(unknown)}; see {config_class.__name__}"
        )


def load_checkpoint(model_args: ModelArguments, **config_fields) -> PreTrainedModel:
    """A checkpoint (folder or Hub id) of one of our model types to fine-tune, loaded with this package's own classes
    (never code from the checkpoint) from its safetensors weights, once `read_checkpoint` has checked its config
    against its family and its weights; anything else is one clear error naming the checkpoint: a missing folder,
    another model type, truncated or mismatched weights, outputs the data does not have. A checkpoint without the
    regression head (a base model's) gets a new one."""
    location = model_args.model_name_or_path
    if looks_local(location) and not (Path(location).expanduser() / "config.json").is_file():
        raise ValueError(f"--model_name_or_path {location}: no such checkpoint folder (it needs a config.json)")
    try:  # a folder, or a Hub id (`org/name`, `org/name@revision`) fetched and checked before loading
        location = str(resolve_model(location).folder)
    except ModelLocationError as error:
        raise ValueError(f"--model_name_or_path {location}: {error}") from None
    if model_args.trust_remote_code:
        logger.warning("--trust_remote_code is not needed: checkpoints load with this package's own classes")
    try:
        config, _ = read_checkpoint(location, head_optional=True)
    except ValueError as error:
        raise ValueError(f"--model_name_or_path {location}: {error}") from None
    outputs = config_fields.get("num_labels", config.num_labels)
    if outputs != config.num_labels:
        raise ValueError(
            f"--model_name_or_path {location}: the checkpoint predicts {config.num_labels} output(s), the data has "
            f"{outputs} label(s): fine-tune a checkpoint with as many outputs"
        )
    family = FAMILIES[config.model_type]
    try:
        config = family.config_class.from_pretrained(location, **config_fields)
        model, loading = family.head_class.from_pretrained(
            location, config=config, use_safetensors=True, output_loading_info=True
        )
    except Exception as error:  # what the header check cannot see: a tensor's data cut short, a field refused
        raise ValueError(f"--model_name_or_path {location}: cannot load its weights ({first_line(error)})") from None
    if loading["missing_keys"]:
        logger.warning("%s holds no regression head (a base model's checkpoint): a new head is trained", location)
    return model


def build_model(
    model_args: ModelArguments,
    num_labels: int,
    num_features: int,
    label_mean: list[float],
    label_std: list[float],
    feature_mean: list[float] | None = None,
) -> PreTrainedModel:
    """A fresh model of `model_type` (authors' sizes unless overridden) or a checkpoint to fine-tune, recording the
    training split's label scale and feature means in its config.

    For the Protein&DNAPerceiver the overrides apply to both encoders and the features to the promoter encoder.
    """
    model = _new_or_loaded_model(model_args, num_labels, num_features, label_mean, label_std)
    encoder_config = model.config.dna_config if FAMILIES[model.config.model_type].reads_protein else model.config
    encoder_config.feature_mean = list(feature_mean) if num_features and feature_mean is not None else None
    return model


def record_model_facts(
    model: PreTrainedModel, metadata: DatasetMetadata, masking: dict, seed: int, data_fingerprint: str
) -> None:
    """Writes into the model's config what a user of the checkpoint needs and would otherwise find only in the
    run's report: the outputs' names (`id2label`) and units, the features' names, the masking it trained with (a
    `drop`-mode model reads its inputs with the same positions removed), the seed and the data's fingerprint."""
    config = model.config
    config.id2label = {index: name for index, name in enumerate(metadata.label_names)}
    config.label2id = {name: index for index, name in enumerate(metadata.label_names)}
    config.label_units = list(metadata.label_units)
    encoder_config = config.dna_config if FAMILIES[config.model_type].reads_protein else config
    encoder_config.feature_names = list(metadata.feature_names) if encoder_config.num_features else None
    config.training_masking = dict(masking)
    config.training_seed = int(seed)
    config.data_fingerprint = data_fingerprint


def _new_or_loaded_model(
    model_args: ModelArguments, num_labels: int, num_features: int, label_mean: list[float], label_std: list[float]
) -> PreTrainedModel:
    label_scale = {"label_mean": label_mean, "label_std": label_std}
    if model_args.model_name_or_path:
        return load_checkpoint(model_args, num_labels=num_labels, **label_scale)
    overrides = parse_config_overrides(model_args.config_overrides)
    check_config_fields(overrides, DNAPerceiverConfig)
    if FAMILIES[model_args.model_type].reads_protein:
        encoders = {"dna_config": {**overrides, "num_features": num_features}, "protein_config": overrides}
        config = AutoConfig.for_model(model_args.model_type, num_labels=num_labels, **encoders, **label_scale)
    else:
        overrides["num_features"] = num_features
        config = AutoConfig.for_model(model_args.model_type, num_labels=num_labels, **overrides, **label_scale)
    return AutoModelForSequenceClassification.from_config(config)


def metrics_in_original_units(label_mean: list[float], label_std: list[float], output_names: list[str] | None):
    """`compute_metrics` for the Trainer: predictions and labels scaled back to the data's units first."""

    def compute_metrics(evaluation: EvalPrediction) -> dict[str, float]:
        predictions = in_data_units(evaluation.predictions, label_mean, label_std)
        references = in_data_units(evaluation.label_ids, label_mean, label_std)
        return compute_expression_metrics(predictions, references, output_names=output_names)

    return compute_metrics
