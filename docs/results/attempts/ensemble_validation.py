"""r2 of each of a search's models and of their average (the ensemble route), through the package's own `predict`
(an ensemble when given several models) and metrics. Judged on the validation split; `--split test` reads the test
split, once, for models already selected on validation.

    python docs/results/attempts/ensemble_validation.py outputs/data/proteome \
        outputs/attempts/proteome/cosine_12/seed0 outputs/attempts/proteome/weight_decay_0.05/seed0 \
        outputs/attempts/proteome/dropout_0.4/seed0
"""

import argparse

from expression_perceiver import predict
from expression_perceiver.data.dataset_dict import load_dataset_dir
from expression_perceiver.inference.inputs import InputFile
from expression_perceiver.training.metrics import compute_expression_metrics


def split_metrics(dataset_dir: str, models: list[str], split: str) -> dict[str, float]:
    frame = predict(InputFile(dataset_dir, kind="dataset", split=split), models)
    splits, _ = load_dataset_dir(dataset_dir)
    observed = splits[split].to_pandas().set_index("gene_id")["label"]
    predicted = frame.filter(like="predicted_").iloc[:, 0].to_numpy()
    return compute_expression_metrics(predicted, observed.loc[frame["id"]].to_numpy())


def describe(metrics: dict[str, float]) -> str:
    return f"{metrics['r2']:.4f}\tR2 {metrics['coefficient_of_determination']:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset_dir")
    parser.add_argument("models", nargs="+")
    parser.add_argument("--split", default="validation", choices=["validation", "test"])
    args = parser.parse_args()
    for model in args.models:
        print(f"{model}\t{describe(split_metrics(args.dataset_dir, [model], args.split))}")
    average = split_metrics(args.dataset_dir, args.models, args.split)
    print(f"average of {len(args.models)}\t{describe(average)}")


if __name__ == "__main__":
    main()
