"""Validation r2 of each of a search's models and of their average (the ensemble route), judged on the validation
split only, through the package's own `predict` (an ensemble when given several models) and metrics.

    python docs/results/attempts/ensemble_validation.py outputs/data/proteome \
        outputs/attempts/proteome/cosine_12/seed0 outputs/attempts/proteome/weight_decay_0.05/seed0 \
        outputs/attempts/proteome/dropout_0.4/seed0
"""

import sys

from expression_perceiver import predict
from expression_perceiver.data.dataset_dict import load_dataset_dir
from expression_perceiver.inference.inputs import InputFile
from expression_perceiver.training.metrics import compute_expression_metrics


def validation_r2(dataset_dir: str, models: list[str]) -> float:
    frame = predict(InputFile(dataset_dir, kind="dataset", split="validation"), models)
    splits, _ = load_dataset_dir(dataset_dir)
    observed = splits["validation"].to_pandas().set_index("gene_id")["label"]
    predicted = frame.filter(like="predicted_").iloc[:, 0].to_numpy()
    metrics = compute_expression_metrics(predicted, observed.loc[frame["id"]].to_numpy())
    return float(metrics["r2"])


def main(dataset_dir: str, models: list[str]) -> None:
    for model in models:
        print(f"{model}\t{validation_r2(dataset_dir, [model]):.4f}")
    print(f"average of {len(models)}\t{validation_r2(dataset_dir, models):.4f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
