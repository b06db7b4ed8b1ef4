"""What the report says of the code the cells ran."""

import numpy as np
import pytest

from expression_perceiver.data_collators import MaskingSettings
from expression_perceiver.study.report import CellResult, calibration_of, devices_line, revisions_line
from expression_perceiver.study.spec import Cell


def test_cells_from_several_code_revisions_are_flagged():
    one = revisions_line(["a" * 40])
    assert one == f"All cells ran code revision {'a' * 12}."
    # a and b hold the same package code (b changed a document), c changed the model, d has uncommitted changes.
    states = {"a" * 40: "tree1", "b" * 40: "tree1", "c" * 40: "tree2"}
    changes = {("a" * 40, "c" * 40): ["expression_perceiver/modeling/modeling_expression_perceiver.py"]}
    same = revisions_line(["a" * 40, "b" * 40], states.get, lambda old, new: changes[old, new])
    assert same.startswith("The cells ran 2 code revisions (aaaaaaaaaaaa, bbbbbbbbbbbb) with the same package code")
    assert "rerun" not in same
    mixed = revisions_line(["a" * 40, "b" * 40, "c" * 40], states.get, lambda old, new: changes[old, new])
    assert mixed.startswith("**The cells ran 3 code revisions** (aaaaaaaaaaaa, bbbbbbbbbbbb, cccccccccccc)")
    assert "package code in 2 states (files that differ: expression_perceiver/modeling/modeling_" in mixed
    assert "rerun the older cells" in mixed
    dirty = "d" * 40 + " (with uncommitted changes)"
    unknown = revisions_line(["a" * 40, dirty], states.get, lambda old, new: changes[old, new])
    assert (
        "dddddddddddd (with uncommitted changes)) with package code in 2 states; 1 of them cannot be compared"
        in unknown
    )


def test_cells_from_several_devices_are_flagged():
    assert devices_line(["CPU (1 threads)"]) == "All cells ran on CPU (1 threads)."
    mixed = devices_line(["CPU (1 threads)", "CPU (2 threads)"])
    assert mixed.startswith("**The cells ran on 2 devices** (CPU (1 threads), CPU (2 threads))")
    assert "rerun the cells of one device" in mixed


def test_calibration_is_read_from_each_cells_predictions(tmp_path):
    # Cells whose predictions are observed / 2 + 1 (and, for the second seed, with noise): the line of the observed
    # values on the predicted ones has slope 2 and intercept -2, whatever the cells' results.json say.
    observed = np.linspace(-1.0, 3.0, 40)
    cells = []
    for seed, noise in enumerate([0.0, 0.01]):
        folder = tmp_path / f"seed{seed}"
        folder.mkdir()
        predicted = observed / 2 + 1 + noise * np.sin(7 * observed)
        rows = [
            f"G{i}\t{o!r}\t{p!r}" for i, (o, p) in enumerate(zip(observed.tolist(), predicted.tolist(), strict=True))
        ]
        (folder / "test_predictions.tsv").write_text("gene_id\tobserved_label\tpredicted_label\n" + "\n".join(rows))
        cell = Cell(masking=MaskingSettings(), seed=seed, output_dir=str(folder), argv=())
        cells.append(CellResult(cell, {"test": {"r2": 1.0}}))
    calibration = calibration_of(cells)
    assert calibration["slope"] == pytest.approx(2.0, abs=0.01) and calibration["intercept"] == pytest.approx(
        -2.0, abs=0.02
    )
    assert calibration_of(cells[:1]) == pytest.approx({"slope": 2.0, "intercept": -2.0}, rel=1e-12)
