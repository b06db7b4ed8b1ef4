"""Train a Perceiver on expression data with the Hugging Face Trainer.

    accelerate launch train.py                        # the embedded demo recipe (configs/demo.yaml)
    accelerate launch train.py configs/proteome_protein_perceiver.yaml
    accelerate launch train.py configs/xpresso_human_dna_perceiver.yaml configs/masking/random_span.yaml --seed 3

Arguments: `expression_perceiver.training.arguments` (model, data, masking) and `TrainingArguments`; recipes apply
in order, then flags.
"""

import sys
from pathlib import Path

from expression_perceiver.cli import main

DEMO_RECIPE = Path(__file__).resolve().parent / "configs" / "demo.yaml"

if __name__ == "__main__":
    sys.exit(main(["train", *(sys.argv[1:] or [str(DEMO_RECIPE)])]))
