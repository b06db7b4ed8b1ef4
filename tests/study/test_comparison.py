"""`expression-perceiver study compare A B -o out.md`: two studies' Table 1 rows side by side and whether each
setting's effect against the reference differs between them, read from the studies' finished cells."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from expression_perceiver.cli import main
from expression_perceiver.study.cells import RESULTS_FILE, cell_identity
from expression_perceiver.study.spec import STUDY_COPY, load_study_dir
from tests.small_models import SMALL_OVERRIDES

TABLE = [{"name": "none", "strategy": "none"}, {"name": "first half removed", "strategy": "first", "mode": "drop",
         "mask_fraction": 0.5}]  # fmt: skip


def finished_study(folder: Path, r2: dict[str, list[float]], figure: list | None = None) -> Path:
    """A study folder whose cells are finished with the given test r2 per setting (seeds 0..n-1); a Figure 1 point
    that is not a Table 1 row takes its r2 under its size."""
    folder.mkdir()
    study = {"name": folder.name, "output_dir": str(folder), "seeds": len(r2["none"]), "table": TABLE,
             "overrides": {"config_overrides": SMALL_OVERRIDES, "synthetic_num_genes": 80}}  # fmt: skip
    if figure:
        study["figure"] = figure
    (folder / STUDY_COPY).write_text(yaml.safe_dump(study))
    loaded = load_study_dir(folder)
    for cell in loaded.cells():
        setting = next((s.name for s in loaded.table if s.masking == cell.masking), None)
        value = r2[setting if setting else str(cell.masking.mask_fraction)][cell.seed]
        Path(cell.output_dir).mkdir(parents=True)
        results = {"identity": cell_identity(cell), "test": {"r2": value}, "validation": {"r2": value}}
        (Path(cell.output_dir) / RESULTS_FILE).write_text(json.dumps(results))
    return folder


def test_compare_writes_both_tables_and_the_difference_of_effects(tmp_path):
    human = finished_study(tmp_path / "human", {"none": [0.30, 0.31, 0.29], "first half removed": [0.20, 0.21, 0.19]})
    mouse = finished_study(tmp_path / "mouse", {"none": [0.29, 0.30, 0.31], "first half removed": [0.25, 0.26, 0.24]})
    output = tmp_path / "species.md"
    assert main(["study", "compare", str(human), str(mouse), "-o", str(output)]) == 0
    comparison = json.loads(output.with_suffix(".json").read_text())
    (effect,) = comparison["effects"]
    assert effect["effect_a"] == pytest.approx(-0.10) and effect["effect_b"] == pytest.approx(-0.05)
    assert effect["difference"] == pytest.approx(0.05)
    low, high = effect["difference_ci"]
    assert 0 < low < 0.05 < high  # a smaller cost in B, beyond the seeds' spread
    assert effect["p_holm"] == pytest.approx(effect["p"]) and effect["p"] < 0.05
    text = output.read_text()
    assert "| first half removed | 3, 3 | 0.2000 +- 0.0100 | 0.2500 +- 0.0100 | -0.1000 | -0.0500 | +0.0500 |" in text
    assert "**first half removed**: differs between the studies" in text
    assert np.isfinite(comparison["settings"][0]["a"]["mean"])


def test_compare_refuses_a_non_markdown_output_and_a_missing_folder(tmp_path, capsys):
    human = finished_study(tmp_path / "human", {"none": [0.30, 0.31], "first half removed": [0.20, 0.21]})
    assert main(["study", "compare", str(human), str(human), "-o", str(tmp_path / "out.json")]) == 2
    assert "name it .md" in capsys.readouterr().err
    assert main(["study", "compare", str(human), str(tmp_path / "absent"), "-o", str(tmp_path / "out.md")]) == 2
    assert "absent" in capsys.readouterr().err
    assert not (tmp_path / "out.md").exists()


def test_compare_adds_the_figure_points_that_are_not_table_rows(tmp_path):
    figure = [{"strategy": "first", "mode": "drop", "mask_fraction": [0, 0.25, 0.5]}]
    r2_a = {"none": [0.30, 0.31, 0.29], "first half removed": [0.20, 0.21, 0.19], "0.25": [0.25, 0.26, 0.24]}
    r2_b = {"none": [0.30, 0.31, 0.29], "first half removed": [0.20, 0.21, 0.19], "0.25": [0.29, 0.30, 0.28]}
    human = finished_study(tmp_path / "human", r2_a, figure)
    mouse = finished_study(tmp_path / "mouse", r2_b, figure)
    output = tmp_path / "species.md"
    assert main(["study", "compare", str(human), str(mouse), "-o", str(output)]) == 0
    comparison = json.loads(output.with_suffix(".json").read_text())
    # 0 is `none` and 0.5 is the Table 1 row: only 0.25 is added, once
    settings = [row["setting"] for row in comparison["settings"]]
    assert settings == ["none", "first half removed", "first (drop), 25% of length"]
    table_row, point = comparison["effects"]
    assert table_row["difference"] == pytest.approx(0.0)
    assert point["effect_a"] == pytest.approx(-0.05) and point["effect_b"] == pytest.approx(-0.01)
    assert point["p_holm"] == pytest.approx(min(1.0, 2 * point["p"]))  # Holm over both settings compared
    row = "| first (drop), 25% of length | 3, 3 | 0.2500 +- 0.0100 | 0.2900 +- 0.0100 | -0.0500 | -0.0100 | +0.0400 |"
    assert row in output.read_text()


def test_compare_names_the_settings_only_one_study_has_run(tmp_path):
    figure = [{"strategy": "first", "mode": "drop", "mask_fraction": [0, 0.25, 0.5]}]
    r2 = {"none": [0.30, 0.31, 0.29], "first half removed": [0.20, 0.21, 0.19], "0.25": [0.25, 0.26, 0.24]}
    planned = finished_study(tmp_path / "planned", r2, figure)
    for results in planned.glob("cells/first-drop-f0.25/*/" + RESULTS_FILE):
        results.unlink()  # the point is planned in A, never run
    run = finished_study(tmp_path / "run", r2, figure)
    output = tmp_path / "rerun.md"
    assert main(["study", "compare", str(planned), str(run), "-o", str(output)]) == 0
    comparison = json.loads(output.with_suffix(".json").read_text())
    assert [row["setting"] for row in comparison["settings"]] == ["none", "first half removed"]
    (effect,) = comparison["effects"]
    assert effect["p_holm"] == pytest.approx(effect["p"])  # Holm over the one setting compared
    assert comparison["not_compared"] == {"no finished cells in A": ["first (drop), 25% of length"]}
    text = output.read_text()
    assert "Not compared (no finished cells in A): first (drop), 25% of length." in text
    assert "nan" not in text
