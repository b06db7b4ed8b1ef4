"""The model card written into every saved and pushed checkpoint, rendered from `model_cards/`."""

import importlib.resources
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

import yaml

from ..modeling import FAMILIES

TEMPLATE_NAME = "expression_perceiver.md"
METRIC_COLUMNS = (
    "r2", "coefficient_of_determination", "pearson", "spearman", "mse", "calibration_slope", "calibration_intercept",
    "n",
)  # fmt: skip
PREDICTS = {
    "dna_perceiver": "The mRNA level of a gene from its promoter DNA sequence{features}.",
    "protein_perceiver": "The abundance of a protein from its amino-acid sequence.",
    "protein_dna_perceiver": "Expression from a gene's promoter DNA together with its protein sequence{features}.",
}


@dataclass
class ModelCardFacts:
    """Everything the card states, gathered by the training run."""

    repo_id: str
    model_type: str
    architecture: str
    parameters: int
    label_names: list[str]
    units: str
    data_source: str
    data_fingerprint: str
    split: str
    metrics: dict[str, dict[str, float]]  # split name -> metric -> value
    masking: str
    recipe: str
    command: str
    seed: int
    epochs: float
    wall_time_s: float
    device: str
    max_length: int
    protein_max_length: int | None = None  # the Protein&DNAPerceiver's protein encoder
    feature_names: list[str] = field(default_factory=list)
    baseline: dict | None = None  # `baseline_on_splits` on the same split, when computed


def model_index(facts: ModelCardFacts) -> list[dict]:
    test = facts.metrics.get("test", {})
    metrics = [
        {"type": name, "value": round(float(test[name]), 4), "name": f"test {name}"}
        for name in ("r2", "pearson", "spearman", "mse", "coefficient_of_determination")
        if name in test
    ]
    return [
        {
            "name": facts.repo_id.split("/")[-1],
            "results": [
                {
                    "task": {"type": "tabular-regression", "name": "expression regression"},
                    "dataset": {"name": facts.data_source, "type": "expression", "split": "test"},
                    "metrics": metrics,
                }
            ],
        }
    ]


def metadata(facts: ModelCardFacts) -> dict:
    return {
        "library_name": "transformers",
        "license": "mit",
        "tags": ["expression-perceiver", facts.model_type, "perceiver", "genomics", "gene-expression", "regression"],
        "metrics": ["r2", "pearson", "spearman", "mse"],
        "model-index": model_index(facts),
    }


def results_table(metrics: dict[str, dict[str, float]]) -> str:
    rows = []
    for split in ("validation", "test"):
        if split in metrics:
            values = metrics[split]
            cells = [
                str(int(values[name])) if name == "n" else f"{values.get(name, float('nan')):.4f}"
                for name in METRIC_COLUMNS
            ]
            rows.append(f"| {split} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def baseline_section(facts: ModelCardFacts) -> str:
    if not facts.baseline:
        return ""
    model_r2 = facts.metrics.get("test", {}).get("r2", float("nan"))
    baseline_r2 = facts.baseline["test"]["r2"]
    with_features = "features_only" in facts.baseline
    inputs = (
        "k-mer frequencies, log length and the per-gene features"
        if with_features
        else "k-mer frequencies plus log length"
    )
    text = (
        f"On the same test split, the k-mer composition baseline (`expression-perceiver baseline`: ridge regression on "
        f"{inputs}) scores r2 = {baseline_r2:.4f}; this model scores {model_r2:.4f} ({model_r2 - baseline_r2:+.4f})."
    )
    if with_features:
        text += (
            f" The features alone (ridge) score r2 = {facts.baseline['features_only']['test']['r2']:.4f} and the "
            f"k-mers alone {facts.baseline['kmers_only']['test']['r2']:.4f}: what the sequence adds is measured "
            "against the features alone."
        )
    return text


def usage_snippet(facts: ModelCardFacts) -> str:
    """Python that loads the pushed model and predicts one example in the data's units."""
    lines = [
        "import torch",
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
        "",
        f'model = AutoModelForSequenceClassification.from_pretrained("{facts.repo_id}", trust_remote_code=True).eval()',
        f'tokenizer = AutoTokenizer.from_pretrained("{facts.repo_id}", trust_remote_code=True)',
    ]
    family = FAMILIES[facts.model_type]
    if family.alphabet == "protein":
        lines.append('inputs = dict(tokenizer(["MKTAYIAKQRQISFVKSHFSRQ"], return_tensors="pt"))')
    else:
        lines.append(
            'inputs = dict(tokenizer(["ACGT" * 15], return_tensors="pt"))  # a promoter of the training window'
        )
    if facts.feature_names:
        lines.append(f'inputs["features"] = torch.zeros(1, {len(facts.feature_names)})  # the per-gene features')
    if family.reads_protein:
        lines += [
            "protein_tokenizer = AutoTokenizer.from_pretrained(",
            f'    "{facts.repo_id}", subfolder="protein_tokenizer", trust_remote_code=True',
            ")",
            'protein = protein_tokenizer(["MKTAYIAKQRQISFVKSHFSRQ"], return_tensors="pt")',
            'inputs["protein_input_ids"] = protein["input_ids"]',
            'inputs["protein_attention_mask"] = protein["attention_mask"]',
        ]
    lines += [
        "with torch.no_grad():",
        "    logits = model(**inputs).logits",
        "prediction = logits * torch.tensor(model.config.label_std) + torch.tensor(model.config.label_mean)",
    ]
    return "\n".join(lines)


def describe_max_length(facts: ModelCardFacts) -> str:
    unit = "residues" if FAMILIES[facts.model_type].alphabet == "protein" else "bases"
    text = f"{facts.max_length:,} {unit}"
    if facts.protein_max_length is not None:
        text += f" (promoter) or {facts.protein_max_length:,} residues (protein)"
    return text


def card_template() -> Template:
    """`model_cards/expression_perceiver.md`: from the repository when run from it, else as installed."""
    in_repository = Path(__file__).resolve().parents[2] / "model_cards" / TEMPLATE_NAME
    if in_repository.is_file():
        return Template(in_repository.read_text())
    return Template(importlib.resources.files("expression_perceiver.model_cards").joinpath(TEMPLATE_NAME).read_text())


def render_model_card(facts: ModelCardFacts) -> str:
    template = card_template()
    with_features = bool(facts.feature_names)
    features_text = f" and {len(facts.feature_names)} per-gene features ({', '.join(facts.feature_names)})"
    return template.substitute(
        metadata=yaml.safe_dump(metadata(facts), sort_keys=False).strip(),
        title=facts.repo_id.split("/")[-1],
        summary=f"A {facts.architecture} from the `expression-perceiver` package, trained on {facts.data_source}.",
        predicts=PREDICTS[facts.model_type].format(features=features_text if with_features else ""),
        units=facts.units,
        results_table=results_table(facts.metrics),
        baseline=baseline_section(facts),
        data_source=facts.data_source,
        data_fingerprint=facts.data_fingerprint[:16],
        split=facts.split,
        architecture=facts.architecture,
        parameters=f"{facts.parameters:,}",
        masking=facts.masking,
        recipe=facts.recipe,
        seed=facts.seed,
        epochs=f"{facts.epochs:g}",
        wall_time=f"{facts.wall_time_s:.0f} s",
        device=facts.device,
        command=facts.command,
        repo_id=facts.repo_id,
        usage=usage_snippet(facts),
        max_length=describe_max_length(facts),
        features_limitation=(
            f"The per-gene features ({', '.join(facts.feature_names)}) must be computed and scaled as in training."
            if with_features
            else "No per-gene features are used: the sequence alone carries the prediction."
        ),
    )
