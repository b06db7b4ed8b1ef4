"""Train a Perceiver on expression data with the Hugging Face Trainer.

    accelerate launch train.py                        # the embedded demo recipe (configs/demo.yaml)
    accelerate launch train.py --max_steps 2          # the demo recipe with one flag changed
    accelerate launch train.py configs/proteome_protein_perceiver.yaml
    accelerate launch train.py configs/xpresso_human_dna_perceiver.yaml configs/masking/random_span.yaml --seed 3
    accelerate launch train.py --help                 # our arguments and the most used ones (--help-all: every one)

Arguments: `expression_perceiver.training.arguments` (model, data, masking) and `TrainingArguments`; recipes apply
in order, then flags. With no recipe file the demo recipe is the base; a recipe file given replaces it.
`expression-perceiver train` takes the same arguments but has no demo base: without a recipe file it starts from the
arguments' defaults.
"""

import sys
from pathlib import Path

from expression_perceiver.training.recipe_parser import TRAIN_SCRIPT
from expression_perceiver.training.run import main as train
from expression_perceiver.training.trainer import HubPushFailed

DEMO_RECIPE = Path(__file__).resolve().parent / "configs" / "demo.yaml"


def main(argv: list[str] | None = None) -> int:
    """The exit status: 0 done, 2 bad input (one line on stderr), 3 trained but the final Hub push failed."""
    try:
        train(sys.argv[1:] if argv is None else argv, default_recipe=DEMO_RECIPE, prog=TRAIN_SCRIPT)
    except HubPushFailed as error:  # the run itself finished: its results are local
        print(f"{TRAIN_SCRIPT}: error: {error}", file=sys.stderr)
        return 3
    except (ValueError, OSError, KeyError) as error:  # bad input: one clear line, no traceback
        print(f"{TRAIN_SCRIPT}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
