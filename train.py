"""Train a Perceiver on expression data with the Hugging Face Trainer.

    accelerate launch train.py                        # the embedded demo recipe (configs/demo.yaml)
    accelerate launch train.py configs/xpresso_human.yaml
    accelerate launch train.py --dataset_dir data/epd --model_type dna_perceiver --output_dir runs/epd ...

Arguments: `expression_perceiver.training.arguments` (model, data, masking) and `TrainingArguments`.
"""

from pathlib import Path

from expression_perceiver.training.run import main

DEMO_RECIPE = Path(__file__).resolve().parent / "configs" / "demo.yaml"

if __name__ == "__main__":
    main(default_recipe=DEMO_RECIPE)
