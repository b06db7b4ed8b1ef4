"""Saved checkpoints load anywhere: through remote code where our package cannot be imported, and through the
registered Auto classes where it can."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from expression_perceiver import (
    AminoAcidTokenizer,
    DNAPerceiverConfig,
    DNAPerceiverForSequenceClassification,
    NucleotideTokenizer,
    ProteinDNAPerceiverConfig,
    ProteinDNAPerceiverForSequenceClassification,
    ProteinPerceiverConfig,
    ProteinPerceiverForSequenceClassification,
)
from tests.processes import process_timeout
from tests.small_models import SMALL_SIZES

PROMOTERS = ["ACGTTGCAnnACGTAGGCTAGCTAGGATCGATCGGATCGAATTCGCGCTAGCTRY" * 9, "acgtacgatcgatcgTTTATAAAGGC" * 3]
PROTEINS = ["MKVLAAGIVGLLLASCASARPAERDSTWYHQNF*", "MSTNPKPQRKTKRNTNRRPQDVKFPGG"]


def save_checkpoints(root) -> dict:
    """Three small checkpoints with tokenizers; returns, per folder, the inputs and the original outputs."""
    torch.manual_seed(0)
    dna_config = DNAPerceiverConfig(**SMALL_SIZES, num_features=8, max_sequence_length=1_000)
    protein_config = ProteinPerceiverConfig(**SMALL_SIZES, max_sequence_length=100)
    models = {
        "dna": DNAPerceiverForSequenceClassification(dna_config),
        "protein": ProteinPerceiverForSequenceClassification(protein_config),
        "protein_dna": ProteinDNAPerceiverForSequenceClassification(
            ProteinDNAPerceiverConfig(
                dna_config=dna_config.to_dict(), protein_config=protein_config.to_dict(), num_labels=2
            )
        ),
    }
    features = torch.randn(2, 8).tolist()
    expected = {}
    for name, model in models.items():
        folder = root / name
        model.eval().save_pretrained(folder)
        tokenizer = AminoAcidTokenizer() if name == "protein" else NucleotideTokenizer()
        tokenizer.save_pretrained(folder)
        if name == "protein_dna":
            AminoAcidTokenizer().save_pretrained(folder / "protein_tokenizer")
        inputs = build_inputs(name, tokenizer, AminoAcidTokenizer(), features)
        with torch.no_grad():
            output = model(**inputs)
        expected[name] = {"folder": str(folder), "features": features, "logits": output.logits.tolist()}
    return expected


def build_inputs(name, tokenizer, protein_tokenizer, features) -> dict:
    if name == "protein":
        return dict(tokenizer(PROTEINS, padding=True, return_tensors="pt"))
    inputs = dict(tokenizer(PROMOTERS, padding=True, return_tensors="pt"))
    inputs["features"] = torch.tensor(features)
    if name == "protein_dna":
        protein = protein_tokenizer(PROTEINS, padding=True, return_tensors="pt")
        inputs["protein_input_ids"] = protein["input_ids"]
        inputs["protein_attention_mask"] = protein["attention_mask"]
    return inputs


# Runs in a fresh interpreter where `import expression_perceiver` fails: only the files in the checkpoint exist.
REMOTE_CODE_CHECK = textwrap.dedent(
    """
    import json, sys
    sys.modules["expression_perceiver"] = None
    try:
        import expression_perceiver
        raise SystemExit("expression_perceiver should not be importable here")
    except ImportError:
        pass
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    PROMOTERS, PROTEINS = {promoters!r}, {proteins!r}
    expected = json.load(open(sys.argv[1]))
    report = {{}}
    for name, case in expected.items():
        folder = case["folder"]
        config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
        base = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
        model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
        if name == "protein":
            inputs = dict(tokenizer(PROTEINS, padding=True, return_tensors="pt"))
        else:
            inputs = dict(tokenizer(PROMOTERS, padding=True, return_tensors="pt"))
            inputs["features"] = torch.tensor(case["features"])
        if name == "protein_dna":
            protein_tokenizer = AutoTokenizer.from_pretrained(
                folder, subfolder="protein_tokenizer", trust_remote_code=True
            )
            protein = protein_tokenizer(PROTEINS, padding=True, return_tensors="pt")
            inputs["protein_input_ids"] = protein["input_ids"]
            inputs["protein_attention_mask"] = protein["attention_mask"]
        with torch.no_grad():
            logits = model(**inputs).logits
            base(**{{k: v for k, v in inputs.items()}})
            # The kernels file came with the bundle (a relative import) and the implementation switch works.
            kernels = sys.modules[type(model).__module__.replace("modeling_", "kernels_")]
            encoder_config = model.config.dna_config if name == "protein_dna" else model.config
            encoder_config.sequence_attention = "reference"
            reference_logits = model(**inputs).logits
        # Head -> base: every encoder weight of the head checkpoint is in the base model.
        head_weights, base_weights = model.state_dict(), base.state_dict()
        encoder_equal = set(base_weights) < set(head_weights) and all(
            torch.equal(base_weights[key], head_weights[key]) for key in base_weights
        )
        # Base -> head: the base checkpoint (saved here, with its copied code) loads under the head, only the
        # head's own weights new.
        base.save_pretrained(folder + "_base")
        reloaded, loading = AutoModelForSequenceClassification.from_pretrained(
            folder + "_base", trust_remote_code=True, output_loading_info=True
        )
        reloaded_weights = reloaded.state_dict()
        report[name + "_interchange"] = {{
            "head_to_base": encoder_equal,
            "base_to_head": all(torch.equal(reloaded_weights[key], base_weights[key]) for key in base_weights),
            "new_in_head": sorted(loading["missing_keys"]),
            "unexpected": sorted(loading["unexpected_keys"]),
        }}
        report[name] = {{
            "config": type(config).__name__,
            "model_module": type(model).__module__,
            "tokenizer": type(tokenizer).__name__,
            # The same weights up to the last bits: some CPUs pick other kernels for a freshly initialised model's
            # memory layout than for loaded weights (seen: 2e-10 apart); a wrong or missing weight is far beyond.
            "identical": torch.allclose(logits, torch.tensor(case["logits"]), rtol=1e-5, atol=1e-7),
            "kernels_module": kernels.__name__,
            "reference_equal": torch.allclose(reference_logits, logits, rtol=1e-5, atol=1e-6),
        }}
    print(json.dumps(report))
    """
)


@pytest.mark.slow
def test_fresh_process_without_our_package_loads_through_remote_code(tmp_path):
    expected = save_checkpoints(tmp_path)
    (tmp_path / "expected.json").write_text(json.dumps(expected))
    script = REMOTE_CODE_CHECK.format(promoters=PROMOTERS, proteins=PROTEINS)
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home"), "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "expected.json")],
        capture_output=True, text=True, cwd=tmp_path, env=environment,
        timeout=process_timeout(starts=1, work_s=20),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["dna"]["config"] == "DNAPerceiverConfig"
    assert report["protein"]["tokenizer"] == "AminoAcidTokenizer"
    for name in ["dna", "protein", "protein_dna"]:
        case = report[name]
        assert case["model_module"].startswith("transformers_modules"), name  # the checkpoint's own code ran
        assert case["identical"], f"{name}: outputs differ from the original model's"
        assert case["kernels_module"].startswith("transformers_modules"), name
        assert case["reference_equal"], f"{name}: the reference implementation disagrees with the default"
        assert report[name + "_interchange"] == {
            "head_to_base": True,
            "base_to_head": True,
            "new_in_head": ["head.out.bias", "head.out.weight"],
            "unexpected": [],
        }, name


@pytest.mark.parametrize("name", ["dna", "protein", "protein_dna"])
def test_registered_auto_classes_load_without_remote_code(tmp_path, name):
    expected = save_checkpoints(tmp_path)[name]
    folder = expected["folder"]
    config = AutoConfig.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    AutoModel.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert type(model).__module__.startswith("expression_perceiver.")  # our package's classes, not copied code
    assert type(config).__module__.startswith("expression_perceiver.")
    inputs = build_inputs(name, tokenizer, AminoAcidTokenizer(), expected["features"])
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, torch.tensor(expected["logits"]), rtol=1e-5, atol=1e-7)


def test_saved_files_and_auto_map(tmp_path):
    folder = save_checkpoints(tmp_path)["dna"]["folder"]
    names = set(os.listdir(folder))
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    bundle = {f"{part}_expression_perceiver.py" for part in ("configuration", "modeling", "kernels", "pipeline")}
    assert bundle <= names
    auto_map = json.loads((tmp_path / "dna" / "config.json").read_text())["auto_map"]
    assert set(auto_map) == {"AutoConfig", "AutoModel", "AutoModelForSequenceClassification"}


def encoder_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {key: value for key, value in model.state_dict().items() if not key.startswith("head.")}


@pytest.mark.parametrize("name", ["dna", "protein", "protein_dna"])
def test_base_and_head_checkpoints_load_into_each_other(tmp_path, name):
    head_folder = save_checkpoints(tmp_path)[name]["folder"]
    head = AutoModelForSequenceClassification.from_pretrained(head_folder)
    base, loading = AutoModel.from_pretrained(head_folder, output_loading_info=True)
    assert loading["missing_keys"] == set() and loading["unexpected_keys"] == {"head.out.bias", "head.out.weight"}
    assert base.state_dict().keys() == encoder_weights(head).keys()
    for key, value in base.state_dict().items():
        assert torch.equal(value, head.state_dict()[key]), key

    base.save_pretrained(tmp_path / "base")
    from_base, loading = AutoModelForSequenceClassification.from_pretrained(tmp_path / "base", output_loading_info=True)
    assert loading["missing_keys"] == {"head.out.bias", "head.out.weight"} and loading["unexpected_keys"] == set()
    for key, value in base.state_dict().items():
        assert torch.equal(value, from_base.state_dict()[key]), key


LEGACY_PROTEIN_DNA = Path(__file__).parent.parent / "fixtures" / "protein_dna_head_model_prefix"


def test_protein_dna_checkpoints_of_the_earlier_head_layout_still_load(tmp_path):
    """The fixture was saved when the Protein&DNA head held its encoders under `model.`; it loads into both
    classes with every weight, predicts what it predicted then, and is saved again in today's layout."""
    expected = json.loads((LEGACY_PROTEIN_DNA / "expected_outputs.json").read_text())
    inputs = {key: torch.tensor(expected[key]) for key in INPUT_NAMES}
    head, loading = AutoModelForSequenceClassification.from_pretrained(LEGACY_PROTEIN_DNA, output_loading_info=True)
    assert loading["missing_keys"] == set() and loading["unexpected_keys"] == set()
    base, loading = AutoModel.from_pretrained(LEGACY_PROTEIN_DNA, output_loading_info=True)
    assert loading["missing_keys"] == set() and loading["unexpected_keys"] == {"head.out.bias", "head.out.weight"}
    with torch.no_grad():
        torch.testing.assert_close(head.eval()(**inputs).logits, torch.tensor(expected["logits"]))
        torch.testing.assert_close(base.eval()(**inputs).pooler_output, torch.tensor(expected["pooler_output"]))

    head.save_pretrained(tmp_path / "resaved")
    with safe_open(str(tmp_path / "resaved" / "model.safetensors"), "pt") as saved:
        keys = set(saved.keys())
    assert keys == set(head.state_dict()) and not any(key.startswith("model.") for key in keys)


INPUT_NAMES = ["input_ids", "attention_mask", "protein_input_ids", "protein_attention_mask", "features"]
