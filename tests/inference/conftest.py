import pytest
import torch

from tests.inference.helpers import save_dna_model, save_protein_dna_model, save_protein_model


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict:
    """Saved tiny checkpoints: two DNAPerceivers with 3 features and 2 outputs (an ensemble), one without label
    standardisation or features (z-scores), a ProteinPerceiver and a Protein&DNAPerceiver."""
    root = tmp_path_factory.mktemp("models")
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    saved = {
        "dna": save_dna_model(root / "dna", seed=0),
        "dna_other_seed": save_dna_model(root / "dna_other_seed", seed=1),
        "zscore": save_dna_model(root / "zscore", seed=2, num_features=0, label_scale=False, num_labels=1),
        "protein_dna": save_protein_dna_model(root / "protein_dna", seed=3),
        "protein": save_protein_model(root / "protein", seed=4),
    }
    torch.set_num_threads(torch_threads)
    return saved
