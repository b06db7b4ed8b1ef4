"""Saturation mutagenesis: exactly one forward pass per sequence (the reference and 3 mutants per base, 19 per residue),
deltas against the model called directly on hand-mutated sequences, the files (npz, TSV, PNG) and the command; known
motifs' matches on the heatmap and in the record."""

import json
from pathlib import Path

import numpy as np
import pytest

from expression_perceiver import Predictor, mutagenesis
from expression_perceiver.cli import build_parser, main
from expression_perceiver.data import DataError
from expression_perceiver.data.motifs import MotifDatabase, MotifHit
from expression_perceiver.inference.mutagenesis import (
    MOTIF_LABELS,
    MutagenesisResult,
    ScanTarget,
    motif_fields,
    motif_track,
    plot_mutagenesis,
)
from tests.inference.helpers import direct_predictions, random_dna, random_protein, read_tsv, save_dna_model
from tests.inference.variant_helpers import CROP, hand_window, revcomp, tss, write_genome_and_bed

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("mutagenesis")
    write_genome_and_bed(root)
    models = [save_dna_model(root / f"model{seed}", seed=seed, num_features=0, num_labels=1) for seed in (31, 32)]
    return {"root": root, "genome": root / "genome.fa", "bed": root / "promoters.bed", "models": models}


def count_forward_passes(predictor: Predictor) -> list[list[int]]:
    """Wraps each member's forward: per member, the batch size of every call."""
    calls = []
    for member in predictor.members:
        sizes: list[int] = []
        original = member.model.forward

        def forward(*args, _original=original, _sizes=sizes, **kwargs):
            _sizes.append(int(kwargs["input_ids"].shape[0]))
            return _original(*args, **kwargs)

        member.model.forward = forward
        calls.append(sizes)
    return calls


def mutate(sequence: str, index: int, letter: str) -> str:
    return sequence[:index] + letter + sequence[index + 1 :]


def test_a_minus_strand_gene_one_pass_per_sequence_and_deltas_of_direct_calls(files, tmp_path):
    predictor = Predictor.from_pretrained(files["models"], device="cpu")
    calls = count_forward_passes(predictor)
    output = tmp_path / "gB.npz"
    result = mutagenesis(
        predictor, gene="gB", genome=files["genome"], bed=files["bed"], window=CROP, scan=(-10, 10), batch_size=16,
        output=output, tsv=tmp_path / "gB.tsv", plot=tmp_path / "gB.png", incremental=False,
    )  # fmt: skip
    positions = 20
    for sizes in calls:  # every member: the reference and 3 mutants per position, each once, in batches of 16
        assert sum(sizes) == 3 * positions + 1
        assert sizes == [16, 16, 16, 13]
    assert result.sequences_scored == 3 * positions + 1

    reference = hand_window("gB")
    assert result.target.sequence == reference and result.target.tss_index == 150
    assert result.positions.tolist() == list(range(140, 160))
    assert result.tss_offsets.tolist() == list(range(-10, 10))
    # Genome positions (1-based, + strand) of a minus-strand window run backwards from the TSS (0-based 1299).
    genome = result.target.genome_positions()[result.positions]
    assert genome.tolist() == [tss("gB") + 1 - offset for offset in range(-10, 10)]

    checks = [(140, "A"), (150, "C"), (150, "T"), (159, "G")]
    checks = [(index, letter) for index, letter in checks if reference[index] != letter]
    sequences = [reference] + [mutate(reference, index, letter) for index, letter in checks]
    direct = np.stack([direct_predictions(model, sequences)[:, 0] for model in files["models"]])  # (models, n)
    deltas = direct[:, 1:] - direct[:, :1]
    for column, (index, letter) in enumerate(checks):
        row, letter_index = index - 140, "ACGT".index(letter)
        assert result.delta[row, letter_index, 0] == pytest.approx(deltas[:, column].mean(), abs=2e-7)
        assert result.delta_std[row, letter_index, 0] == pytest.approx(deltas[:, column].std(ddof=1), abs=2e-7)
    # The reference letter of each position is not a mutation.
    for row, index in enumerate(result.positions):
        assert np.isnan(result.delta[row, "ACGT".index(reference[index]), 0])
    np.testing.assert_allclose(result.importance[:, 0], np.nanmean(np.abs(result.delta[:, :, 0]), axis=1))

    arrays = np.load(output)
    assert arrays["delta"].shape == (20, 4, 1) and arrays["alt_pred"].shape == (20, 4, 2, 1)
    assert arrays["tss_offsets"].tolist() == list(range(-10, 10)) and str(arrays["chrom"]) == "chr1"
    np.testing.assert_array_equal(arrays["delta"], result.delta)
    header, rows = read_tsv(tmp_path / "gB.tsv")
    assert header == ["position", "tss_offset", "chrom", "genome_position", "ref", "alt", "alt_pred", "delta",
                      "delta_std"]  # fmt: skip
    assert len(rows) == 3 * positions
    assert rows[0][:6] == ["141", "-10", "chr1", str(tss("gB") + 11), reference[140], rows[0][5]]
    assert (tmp_path / "gB.png").read_bytes()[:8] == PNG_MAGIC
    record = json.loads((tmp_path / "gB.npz.json").read_text())
    assert record["sequences_scored_per_model"] == 61 and record["positions"] == 20
    assert record["target"]["strand"] == "-"


@pytest.mark.parametrize("family", ["dna", "protein"])
def test_the_incremental_path_gives_the_full_paths_numbers(files, models, family):
    if family == "dna":
        target = dict(gene="gB", genome=files["genome"], bed=files["bed"], window=CROP, scan=(-40, 40))
        members = files["models"]
    else:
        target = dict(sequence=random_protein(np.random.default_rng(3), 90))
        members = [models["protein"]]
    predictor = Predictor.from_pretrained(members, device="cpu")
    fast = mutagenesis(predictor, **target)
    full = mutagenesis(predictor, **target, incremental=False)
    assert fast.record["path"].startswith("incremental") and full.record["path"].startswith("full")
    np.testing.assert_allclose(fast.ref_pred, full.ref_pred, rtol=0, atol=1e-12)
    scale = np.stack([scale[1] for scale in predictor.scales])[None, None]  # z-score units: 1e-5 of a label's std
    assert np.array_equal(np.isnan(fast.alt_pred), np.isnan(full.alt_pred))
    assert np.nanmax(np.abs(fast.alt_pred - full.alt_pred) / scale) < 1e-5


def test_a_model_that_reads_a_cropped_window_at_evaluation_takes_the_full_path():
    """A model trained with half of each window dropped reads the cropped window at evaluation: the substitutions'
    positions are not the model's, so no incremental scan."""
    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "dna_two_outputs_drop_masking"
    sequence = random_dna(np.random.default_rng(0), 300)
    result = mutagenesis(str(fixture), sequence=sequence, features={"sequence": [0.0, 0.0]}, scan=(0, 10))
    assert result.record["path"].startswith("full")


def test_the_default_scan_is_the_2000_positions_around_the_tss_clipped_to_the_sequence(files):
    predictor = Predictor.from_pretrained(files["models"][:1], device="cpu")
    calls = count_forward_passes(predictor)
    result = mutagenesis(
        predictor, gene="gA", genome=files["genome"], bed=files["bed"], window=CROP, batch_size=300, incremental=False
    )
    assert result.positions.tolist() == list(range(300))  # -1000..+999 clipped to the 300-base window
    assert sum(calls[0]) == 3 * 300 + 1 and len(calls[0]) == 4
    assert "clipped" in result.record["scan"]


def test_sequences_regions_and_positions_that_are_not_mutated(files, tmp_path):
    model = files["models"][0]
    sequence = hand_window("gA")[:100] + "NN" + hand_window("gA")[102:120]
    result = mutagenesis(model, sequence=sequence, scan=(95, 105), device="cpu")
    assert result.sequences_scored == 1 + 3 * 8  # positions 100 and 101 hold N: not mutated
    assert np.isnan(result.delta[5:7]).all() and result.tss_offsets is None
    expected = direct_predictions(model, [sequence, mutate(sequence, 95, "T" if sequence[95] != "T" else "A")])
    letter = "ACGT".index("T" if sequence[95] != "T" else "A")
    assert result.delta[0, letter, 0] == pytest.approx(expected[1, 0] - expected[0, 0], abs=2e-7)

    # A region on the minus strand is the reverse complement; a TSS index places the offsets.
    region = mutagenesis(
        model, region="chr1:1151-1450:-", genome=files["genome"], tss_index=150, scan=(0, 2), device="cpu"
    )
    assert region.target.sequence == hand_window("gB") and region.tss_offsets.tolist() == [0, 1]
    with pytest.raises(DataError, match="give one thing to scan"):
        mutagenesis(model, sequence="ACGT", gene="gA")
    with pytest.raises(DataError, match="the model reads at most 300"):
        mutagenesis(model, sequence="A" * 301)
    assert revcomp("AACG") == "CGTT"


def test_a_protein_model_scans_19_residues_per_position(models):
    protein = random_protein(np.random.default_rng(5), 60)
    result = mutagenesis(models["protein"], sequence=protein, scan=(10, 13), device="cpu")
    assert result.letters == "ACDEFGHIKLMNPQRSTVWY" and result.sequences_scored == 1 + 19 * 3
    index, letter = 11, "W" if protein[11] != "W" else "Y"
    expected = direct_predictions(models["protein"], [protein, mutate(protein, index, letter)])
    assert result.delta[1, result.letters.index(letter), 0] == pytest.approx(expected[1, 0] - expected[0, 0], abs=2e-7)


def test_the_command_writes_a_tsv_and_a_heatmap(files, tmp_path, capsys):
    output = tmp_path / "scan.tsv"
    code = main(["mutagenesis", "--gene", "gA", "--genome", str(files["genome"]), "--bed", str(files["bed"]),
                 "--window", *map(str, CROP), "--scan", "-3", "3", "-m", str(files["models"][0]), "-o", str(output),
                 "--batch-size", "8"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "19 sequences per model" in printed
    header, rows = read_tsv(output)
    assert len(rows) == 18 and header[:2] == ["position", "tss_offset"]
    assert [row[1] for row in rows[::3]] == ["-3", "-2", "-1", "0", "1", "2"]
    assert output.with_suffix(".png").read_bytes()[:8] == PNG_MAGIC
    capsys.readouterr()
    assert main(["mutagenesis", "--gene", "nope", "--genome", str(files["genome"]), "--bed", str(files["bed"]),
                 "-m", str(files["models"][0]), "-o", str(tmp_path / "x.npz")]) == 2  # fmt: skip
    error = capsys.readouterr().err
    assert error.strip() == "expression-perceiver mutagenesis: error: promoters.bed: no promoter window for gene 'nope'"


def test_a_region_past_the_chromosome_end_is_refused_not_padded(files, tmp_path, capsys):
    """chr2 has 1,200 bases: a region reaching past them would be scanned over N padding without a word."""
    model = files["models"][0]
    with pytest.raises(DataError) as raised:
        mutagenesis(model, region="chr2:1101-1250", genome=files["genome"], device="cpu")
    assert str(raised.value) == "region chr2:1101-1250: ends at 1,250, past the end of chr2 (1,200 bases in genome.fa)"
    output = tmp_path / "region.npz"
    arguments = ["mutagenesis", "--region", "chr2:1300-1400:-", "--genome", str(files["genome"]), "-m", str(model),
                 "-o", str(output)]  # fmt: skip
    assert main(arguments) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "past the end of chr2 (1,200 bases" in error
    assert list(tmp_path.iterdir()) == []
    ending = mutagenesis(model, region="chr2:1101-1200", genome=files["genome"], scan=(98, 100), device="cpu")
    assert "N" not in ending.target.sequence and len(ending.target.sequence) == 100  # the last base is fine


def test_the_tsv_position_is_1_based_and_the_npz_positions_0_based_and_both_say_so(files, tmp_path):
    sequence = hand_window("gA")[:40]
    output, tsv = tmp_path / "scan.npz", tmp_path / "scan.tsv"
    result = mutagenesis(files["models"][0], sequence=sequence, scan=(0, 3), output=output, tsv=tsv, device="cpu")
    arrays = np.load(output)
    assert arrays["positions"].tolist() == [0, 1, 2] and int(arrays["positions_base"]) == 0
    header, rows = read_tsv(tsv)
    assert sorted({int(row[header.index("position")]) for row in rows}) == [1, 2, 3]
    for row in rows:  # the TSV's ref is the letter at position - 1 of the sequence
        assert row[header.index("ref")] == sequence[int(row[header.index("position")]) - 1]
    coordinates = json.loads((tmp_path / "scan.npz.json").read_text())["coordinates"]
    assert coordinates["tsv position"].startswith("1-based") and coordinates["npz positions"].startswith("0-based")
    assert result.record["coordinates"] == coordinates

    region = mutagenesis(
        files["models"][0], region="chr1:1151-1450", genome=files["genome"], scan=(0, 2), output=tmp_path / "r.npz",
        device="cpu",
    )  # fmt: skip
    arrays = np.load(tmp_path / "r.npz")
    assert arrays["genome_positions"].tolist() == [1151, 1152] and int(arrays["genome_positions_base"]) == 1
    assert region.target.genome_positions()[0] == 1151


# Two 12-base motifs: a perfect match has p-value 4^-12 (6e-8), well under the default threshold of 1e-5.
MOTIFS = {"TEST1.1 ALPHA": "TATAAAAGCCTG", "TEST2.1 BETA": "GGGGCGGGGCAA"}


def write_meme(path, motifs=MOTIFS):
    """A MEME file of consensus motifs: each consensus letter 0.97, the others 0.01."""
    lines = ["MEME version 4", "", "ALPHABET= ACGT", "", "strands: + -", ""]
    for label, consensus in motifs.items():
        lines += [f"MOTIF {label}", f"letter-probability matrix: alength= 4 w= {len(consensus)} nsites= 20 E= 0"]
        lines += [" ".join("0.97" if letter == other else "0.01" for other in "ACGT") for letter in consensus]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def planted_sequence() -> str:
    """120 random bases: ALPHA's reverse complement at 60..72, BETA at 30..42 and at 85..97."""
    letters = list(np.random.default_rng(8).choice(list("ACGT"), size=120))
    letters[60:72] = revcomp(MOTIFS["TEST1.1 ALPHA"])
    letters[30:42] = MOTIFS["TEST2.1 BETA"]
    letters[85:97] = MOTIFS["TEST2.1 BETA"]
    return "".join(letters)


def test_motif_matches_overlapping_the_scan_are_kept_listed_and_drawn(files, tmp_path):
    """The TSS at index 50, the scan -10..30 (indices 40..80): ALPHA's minus-strand site lies inside, BETA's first
    site straddles the scan's start, its second lies past the scan's end."""
    meme = write_meme(tmp_path / "motifs.meme")
    output, plot = tmp_path / "scan.npz", tmp_path / "scan.png"
    result = mutagenesis(
        files["models"][0], sequence=planted_sequence(), tss_index=50, scan=(-10, 30), motifs=meme, output=output,
        plot=plot, device="cpu",
    )  # fmt: skip
    found = [(hit.motif_id, hit.motif_name, hit.start, hit.end, hit.strand) for hit in result.motif_hits]
    assert found == [("TEST2.1", "BETA", 30, 42, "+"), ("TEST1.1", "ALPHA", 60, 72, "-")]
    assert all(hit.p_value < 1e-5 and hit.score > 0 for hit in result.motif_hits)
    assert plot.read_bytes()[:8] == PNG_MAGIC

    record = json.loads((tmp_path / "scan.npz.json").read_text())
    assert record["motif_hits"] == result.record["motif_hits"]
    beta, alpha = record["motif_hits"]
    assert alpha["name"] == "ALPHA" and alpha["id"] == "TEST1.1" and alpha["strand"] == "-"
    assert (alpha["start"], alpha["end"], alpha["tss_offset_start"], alpha["tss_offset_end"]) == (60, 72, 10, 22)
    assert (beta["start"], beta["tss_offset_start"]) == (30, -20) and alpha["labelled"] and beta["labelled"]
    assert alpha["p_value"] == pytest.approx(result.motif_hits[1].p_value)
    motifs = record["motifs"]
    assert motifs["database"] == "MEME file motifs.meme" and motifs["path"] == str(meme)
    assert motifs["licence"] is None and motifs["motifs_searched"] == 2 and motifs["p_value_threshold"] == 1e-5
    assert motifs["hits"] == motifs["hits_labelled"] == 2 and "labels" not in motifs
    # Inside the matches: indices 40, 41 (BETA's part in the scan) and 60..71 (ALPHA).
    inside = np.isin(result.positions, [40, 41, *range(60, 72)])
    assert motifs["positions_inside_hits"] == 14
    magnitude = np.abs(result.delta[:, :, 0])
    assert motifs["mean_abs_delta_inside_hits"][0] == pytest.approx(np.nanmean(magnitude[inside]))
    assert motifs["mean_abs_delta_outside_hits"][0] == pytest.approx(np.nanmean(magnitude[~inside]))


def test_overlapping_matches_are_stacked_and_only_the_most_significant_labelled(tmp_path):
    """The heatmap's motif track without FIMO: matches made by hand on a scan without a model."""
    positions = np.arange(0, 200)
    deltas = np.random.default_rng(1).normal(size=(200, 4, 1, 1))
    target = ScanTarget("seq", "A" * 200, "a sequence given", tss_index=100)
    hits = [MotifHit(f"M{i}", f"F{i}", 10 * i, 10 * i + 12, "+-"[i % 2], 10.0, 10.0 ** -(6 + i % 7)) for i in range(19)]
    hits += [MotifHit("O1", "OVER", 12, 20, "+", 9.0, 1e-9), MotifHit("O2", "OVER", 14, 22, "-", 9.0, 2e-9)]
    hits += [MotifHit("E", "EDGE", 195, 207, "+", 9.0, 3e-9)]  # runs past the scan's end
    result = MutagenesisResult(
        target, "ACGT", positions, np.zeros((1, 1)), deltas, ["y"], "z-score", 801, motif_hits=hits,
        motif_source="test.meme", motif_p_value=1e-5,
    )  # fmt: skip
    track = motif_track(result, (-100.5, 99.5), 8.0)
    assert len(track.label_x) == MOTIF_LABELS < len(hits)
    labelled = {hits[index].motif_id for index in track.label_x}
    assert {"O1", "O2", "E"} <= labelled  # the smallest p-values
    rows = dict(zip((hit.motif_id for hit in hits), track.rows_of, strict=True))
    assert len({rows["M1"], rows["O1"], rows["O2"]}) == 3 and track.rows >= 3  # three overlapping matches
    assert track.spans[hits.index(hits[-1])] == (94.5, 99.5)  # x: offsets from the TSS, clipped to the heatmap
    fields = motif_fields(result, MotifDatabase([], tmp_path / "test.meme", description="MEME file test.meme"))
    assert fields["motifs"]["hits_labelled"] == MOTIF_LABELS
    assert "the 20 most significant of 22" in fields["motifs"]["labels"]
    assert sum(hit["labelled"] for hit in fields["motif_hits"]) == MOTIF_LABELS
    plot_mutagenesis(result, tmp_path / "track.png")
    assert (tmp_path / "track.png").read_bytes()[:8] == PNG_MAGIC


def test_motifs_are_refused_for_a_protein_model_and_a_file_that_is_not_meme(models, files, tmp_path, capsys):
    meme = write_meme(tmp_path / "motifs.meme")
    protein = random_protein(np.random.default_rng(5), 60)
    with pytest.raises(ValueError, match="motifs are DNA motifs") as raised:
        mutagenesis(models["protein"], sequence=protein, motifs=meme, output=tmp_path / "p.npz", device="cpu")
    assert "\n" not in str(raised.value) and not (tmp_path / "p.npz").exists()

    table = tmp_path / "motifs.tsv"
    table.write_text("gene\tvalue\nTP53\t1.0\n")
    output = tmp_path / "scan.npz"
    arguments = ["mutagenesis", "--sequence", planted_sequence(), "-m", str(files["models"][0]), "-o", str(output)]
    assert main([*arguments, "--motifs", str(table)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"{table}: not a MEME motif file" in error
    assert main([*arguments, "--motifs", str(tmp_path / "missing.meme")]) == 2
    assert "missing.meme: file not found" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["motifs.meme", "motifs.tsv"]  # nothing written

    parse = build_parser().parse_args
    assert parse([*arguments, "--motifs", "-m", "other"]).motifs == "jaspar"  # the flag alone: JASPAR
    assert parse([*arguments, "--motifs", str(meme)]).motifs == str(meme)
    assert parse(arguments).motifs is None and parse(arguments).motif_p_value == 1e-5
