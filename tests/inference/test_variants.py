"""Variant effects against windows built by hand from the genome string and the model called directly on them: SNVs,
insertions, deletions (one removing a TSS), multi-allelic records, both strands, two genes over one variant,
duplicate records, REF mismatches, symbolic alleles, variants outside every window, bgzip + tabix input, the
annotated VCF, features, TSS tables, and malformed files."""

import json

import numpy as np
import pandas
import pysam
import pytest

from expression_perceiver import Predictor, variant_effects
from expression_perceiver.cli import main
from expression_perceiver.data import DataError
from tests.inference.helpers import direct_predictions, read_tsv, save_dna_model
from tests.inference.variant_helpers import (
    CHR1,
    CROP,
    DOWNSTREAM,
    GENES,
    UPSTREAM,
    base,
    hand_window,
    other,
    tss,
    write_genome_and_bed,
)

INSERTED = base(1_179) + "GG" + other(base(1_179))  # unambiguous: its minimal form inserts before 1180

# (chrom, 1-based pos, id, ref, alts) of the VCF, in file order
RECORDS = [
    ("chr1", 1_081, "snv_a", base(1_080), [other(base(1_080))]),  # SNV in gA only (upstream of its TSS)
    ("chr1", 1_251, "snv_ab", base(1_250), [other(base(1_250))]),  # SNV in gA and gB, soft-masked in the FASTA
    ("chr1", 1_180, "ins_ab", base(1_179), [INSERTED]),  # insertion: upstream for gA, downstream for gB
    ("chr1", 1_320, "del_ab", CHR1[1_319:1_325], [base(1_319)]),  # deletion: downstream for gA, upstream for gB
    ("chr1", 1_400, "multi_b", CHR1[1_399:1_401], [base(1_399), other(base(1_399)) + base(1_400), "<DEL>"]),
    ("chr1", 1_101, "mismatch", other(base(1_100)), [base(1_100)]),  # REF differs from the genome
    ("chr2", 520, "symbolic", base(519, "chr2"), ["<INS>"]),
    ("chr1", 11, "outside", base(10), [other(base(10))]),
    ("chr9", 100, "no_chrom", "A", ["G"]),
    ("chr1", 1_081, "snv_a", base(1_080), [other(base(1_080))]),  # a duplicate of the first record
    ("chr2", 480, "snv_c", base(479, "chr2"), [other(base(479, "chr2"))]),  # chr2 = the BED's "2"
    ("chr1", 1_199, "del_tss", CHR1[1_198:1_202], [base(1_198)]),  # deletes gA's TSS (1200) and the next base
    ("chr1", 1_252, "no_alt", base(1_251), []),
    ("chr1", 1_253, "iupac", base(1_252), ["R"]),
    ("chr1", 1_180, "ins_ab", base(1_179), [INSERTED]),  # a duplicate insertion
]

# The rows expected, in order: (record id, alt, gene, status, hand-built ALT window or None)
EXPECTED = [
    ("snv_a", 0, "gA", "ok", dict(pos=1_081, ref=base(1_080), alt=other(base(1_080)))),
    ("snv_ab", 0, "gA", "ok", dict(pos=1_251, ref=base(1_250), alt=other(base(1_250)))),
    ("snv_ab", 0, "gB", "ok", dict(pos=1_251, ref=base(1_250), alt=other(base(1_250)))),
    ("ins_ab", 0, "gA", "ok", dict(pos=1_180, ref=base(1_179), alt=INSERTED)),
    ("ins_ab", 0, "gB", "ok", dict(pos=1_180, ref=base(1_179), alt=INSERTED)),
    ("del_ab", 0, "gA", "ok", dict(pos=1_320, ref=CHR1[1_319:1_325], alt=base(1_319))),
    ("del_ab", 0, "gB", "ok", dict(pos=1_320, ref=CHR1[1_319:1_325], alt=base(1_319))),
    ("multi_b", 0, "gB", "ok", dict(pos=1_400, ref=CHR1[1_399:1_401], alt=base(1_399))),
    ("multi_b", 1, "gB", "ok", dict(pos=1_400, ref=CHR1[1_399:1_401], alt=other(base(1_399)) + base(1_400))),
    ("multi_b", 2, "gB", "symbolic_allele", None),
    ("mismatch", 0, "gA", "ref_mismatch", None),
    ("symbolic", 0, "gC", "symbolic_allele", None),
    ("outside", 0, ".", "outside_windows", None),
    ("no_chrom", 0, ".", "chromosome_not_in_genome", None),
    ("snv_a", 0, "gA", "ok", dict(pos=1_081, ref=base(1_080), alt=other(base(1_080)))),
    ("snv_c", 0, "gC", "ok", dict(pos=480, ref=base(479, "chr2"), alt=other(base(479, "chr2")))),
    # gA's TSS (1200) is deleted with 1199 and 1201: the next remaining base, 1202, takes its index; in the mutated
    # chromosome it sits at 1199.
    ("del_tss", 0, "gA", "ok", dict(pos=1_199, ref=CHR1[1_198:1_202], alt=base(1_198), tss_after=1_199)),
    ("del_tss", 0, "gB", "ok", dict(pos=1_199, ref=CHR1[1_198:1_202], alt=base(1_198))),
    ("no_alt", None, ".", "no_alt_allele", None),
    ("iupac", 0, "gA", "unsupported_allele", None),
    ("iupac", 0, "gB", "unsupported_allele", None),
    ("ins_ab", 0, "gA", "ok", dict(pos=1_180, ref=base(1_179), alt=INSERTED)),
    ("ins_ab", 0, "gB", "ok", dict(pos=1_180, ref=base(1_179), alt=INSERTED)),
]


def write_vcf(path, records=RECORDS):
    lines = ["##fileformat=VCFv4.2", "##contig=<ID=chr1,length=3000>", "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    for chrom, pos, record_id, ref, alts in records:
        lines.append(f"{chrom}\t{pos}\t{record_id}\t{ref}\t{','.join(alts) or '.'}\t.\tPASS\tDP=10")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("variants")
    write_genome_and_bed(root, soft_masked=(1_240, 1_260))
    write_vcf(root / "variants.vcf")
    models = [
        save_dna_model(root / "model1", seed=21, num_features=0, num_labels=1),
        save_dna_model(root / "model2", seed=22, num_features=0, num_labels=1),
    ]
    return {"root": root, "genome": root / "genome.fa", "bed": root / "promoters.bed", "vcf": root / "variants.vcf",
            "models": models}  # fmt: skip


def hand_sequences():
    """(reference window by gene, ALT window by expected row index)."""
    references = {gene: hand_window(gene) for gene in GENES}
    alts = {index: hand_window(gene, **change) for index, (_, _, gene, _, change) in enumerate(EXPECTED) if change}
    return references, alts


@pytest.fixture(scope="module")
def expected(files):
    """Direct predictions of each model for the hand-built reference and ALT windows."""
    references, alts = hand_sequences()
    genes, indices = list(references), list(alts)
    sequences = [references[gene] for gene in genes] + [alts[index] for index in indices]
    per_model = [direct_predictions(model, sequences)[:, 0] for model in files["models"]]
    result = []
    for values in per_model:
        ref = dict(zip(genes, values[: len(genes)], strict=True))
        alt = dict(zip(indices, values[len(genes) :], strict=True))
        result.append((ref, alt))
    return result


def check_rows(header, rows, expected, ensemble: bool):
    column = {name: header.index(name) for name in header}
    assert len(rows) == len(EXPECTED)
    for index, (row, (record_id, alt, gene, status, _)) in enumerate(zip(rows, EXPECTED, strict=True)):
        where = f"row {index} ({record_id}, {gene})"
        record = next(item for item in RECORDS if item[2] == record_id)
        assert row[column["id"]] == record_id, where
        assert row[column["alt"]] == (record[4][alt] if alt is not None else "."), where
        assert row[column["gene"]] == gene and row[column["status"]] == status, where
        if status != "ok":
            assert row[column["delta"]] == "NA" and row[column["ref_pred"]] == "NA", where
            continue
        refs = np.array([model[0][gene] for model in expected])
        alts = np.array([model[1][index] for model in expected])
        assert float(row[column["ref_pred"]]) == pytest.approx(refs.mean(), abs=1e-6), where
        assert float(row[column["alt_pred"]]) == pytest.approx(alts.mean(), abs=1e-6), where
        assert float(row[column["delta"]]) == pytest.approx((alts - refs).mean(), abs=2e-7), where
        if ensemble:
            assert float(row[column["delta_std"]]) == pytest.approx((alts - refs).std(ddof=1), abs=2e-7), where


def test_every_kind_of_record_through_the_cli_with_an_ensemble(files, expected, capsys):
    output = files["root"] / "effects.tsv"
    annotated = files["root"] / "annotated.vcf.gz"
    arguments = ["variant-effect", "--vcf", str(files["vcf"]), "--genome", str(files["genome"]),
                 "--bed", str(files["bed"]), "--window", *map(str, CROP), "-o", str(output),
                 "--annotate-vcf", str(annotated), "--batch-size", "4", "--quiet"]  # fmt: skip
    for model in files["models"]:
        arguments += ["-m", str(model)]
    assert main(arguments) == 0, capsys.readouterr().err
    header, rows = read_tsv(output)
    assert header == ["chrom", "pos", "id", "ref", "alt", "gene", "strand", "tss_offset", "ref_pred", "alt_pred",
                      "delta", "delta_std", "n_models", "status"]  # fmt: skip
    check_rows(header, rows, expected, ensemble=True)
    by_id = {}
    for row in rows:
        by_id.setdefault((row[2], row[4], row[5]), []).append(row)
    # Duplicate records: identical numbers, to the last digit.
    for key in [("snv_a", other(base(1_080)), "gA"), ("ins_ab", INSERTED, "gB")]:
        first, second = by_id[key]
        assert first == second
    # Offsets from the TSS on the gene's strand: the first changed base (an insertion's, on the + strand, the base
    # after it).
    offsets = {(row[2], row[5]): row[7] for row in rows}
    assert offsets[("snv_a", "gA")] == str(1_080 - 1_200)
    assert offsets[("snv_ab", "gB")] == str(1_299 - 1_250)
    assert offsets[("ins_ab", "gA")] == str(1_180 - 1_200)
    assert offsets[("del_ab", "gB")] == str(1_299 - 1_324)
    assert [row[6] for row in rows[:3]] == ["+", "+", "-"]

    record = json.loads((files["root"] / "effects.tsv.json").read_text())
    assert record["counts"]["status"]["ok"] == 15 and record["counts"]["records"] == len(RECORDS)
    # One reference window per gene; each distinct ALT window once (duplicates and repeats are not rescored).
    assert record["counts"]["reference_windows"] == 3
    assert record["counts"]["alt_windows"] == 12
    assert "anchored at the TSS" in record["indel_rule"]

    # The annotated VCF: every record, with one EP_EFFECT value per row, its delta the TSV's.
    with pysam.VariantFile(str(annotated)) as handle:
        assert "EP_EFFECT" in handle.header.info
        annotated_records = list(handle)
    assert len(annotated_records) == len(RECORDS)
    values = [value for item in annotated_records for value in item.info["EP_EFFECT"]]
    assert len(values) == len(rows)
    for value, row in zip(values, rows, strict=True):
        fields = value.split("|")
        assert fields[0] == row[4] and fields[1] == row[5] and fields[-1] == row[-1]
        if row[-1] == "ok":
            assert float(fields[4]) == pytest.approx(float(row[10]), rel=1e-5, abs=1e-9)
    assert str(annotated_records[0].info["DP"]) == "10"  # the input's own INFO is kept


def test_the_windows_scored_are_the_hand_built_ones(files, expected):
    """The sequences handed to the models, exactly: reference windows as `prepare genome` cuts them, ALT windows
    anchored at the TSS, padded from the genome beyond the window."""
    predictor = Predictor.from_pretrained([files["models"][0]], device="cpu")
    seen = {}
    original = predictor.predict_batch

    def spy(examples):
        for example in examples:
            seen[example.id] = example.sequence
        return original(examples)

    predictor.predict_batch = spy
    table = variant_effects(
        files["vcf"], predictor, genome=files["genome"], bed=files["bed"], window=CROP, batch_size=3, incremental=False
    )
    references, alts = hand_sequences()
    for gene, sequence in references.items():
        assert seen[f"{gene}|ref"] == sequence, gene
    for index, (record_id, alt, gene, status, _) in enumerate(EXPECTED):
        if status != "ok":
            continue
        chrom, pos, _, ref, alleles = next(item for item in RECORDS if item[2] == record_id)
        name = f"{gene}|{chrom}:{pos}:{ref}>{alleles[alt]}"
        assert seen[name] == alts[index], f"row {index}: {record_id} in {gene}"
        assert len(alts[index]) == UPSTREAM + DOWNSTREAM
    # A single model: no ensemble columns; unscored rows are NaN.
    assert list(table.columns) == ["chrom", "pos", "id", "ref", "alt", "gene", "strand", "tss_offset", "ref_pred",
                                   "alt_pred", "delta", "status"]  # fmt: skip
    ok = table["status"] == "ok"
    assert table.loc[~ok, "delta"].isna().all()
    refs, alt_values = expected[0]
    wanted = [alt_values[i] - refs[row[2]] for i, row in enumerate(EXPECTED) if row[3] == "ok"]
    np.testing.assert_allclose(table.loc[ok, "delta"].to_numpy(), wanted, rtol=0, atol=2e-7)


def test_snvs_and_substitutions_scored_incrementally_give_the_full_paths_table(files, tmp_path):
    predictor = Predictor.from_pretrained(files["models"], device="cpu")
    common = dict(genome=files["genome"], bed=files["bed"], window=CROP)
    fast = variant_effects(files["vcf"], predictor, **common, output=tmp_path / "fast.tsv")
    variant_effects(files["vcf"], predictor, **common, output=tmp_path / "full.tsv", incremental=False)
    counts = fast.record["counts"]
    assert 0 < counts["alt_windows_incremental"] < counts["alt_windows"]  # indels took the full pass
    assert fast.record["path"].startswith("incremental")
    fast_table, full_table = (pandas.read_csv(tmp_path / name, sep="\t") for name in ("fast.tsv", "full.tsv"))
    numbers = [column for column in full_table if column.startswith(("ref_pred", "alt_pred", "delta"))]
    assert fast_table.drop(columns=numbers).equals(full_table.drop(columns=numbers))
    np.testing.assert_allclose(fast_table[numbers].to_numpy(), full_table[numbers].to_numpy(), rtol=0, atol=1e-5)


def test_bgzip_tabix_input_gives_the_same_table(files, tmp_path):
    compressed = tmp_path / "variants.vcf.gz"
    pysam.tabix_compress(str(files["vcf"]), str(compressed))
    sorted_plain = write_vcf(tmp_path / "sorted.vcf", sorted(RECORDS, key=lambda item: (item[0], item[1])))
    sorted_compressed = tmp_path / "sorted.vcf.gz"
    pysam.tabix_compress(str(sorted_plain), str(sorted_compressed))
    pysam.tabix_index(str(sorted_compressed), preset="vcf")
    assert (tmp_path / "sorted.vcf.gz.tbi").is_file()
    common = dict(genome=files["genome"], bed=files["bed"], window=CROP)
    predictor = Predictor.from_pretrained([files["models"][0]], device="cpu")
    plain = variant_effects(files["vcf"], predictor, **common)
    gzipped = variant_effects(compressed, predictor, **common)
    assert plain.equals(gzipped)
    indexed = variant_effects(sorted_compressed, predictor, **common)
    assert len(indexed) == len(plain) and set(indexed["id"]) == set(plain["id"])


def test_features_several_outputs_and_a_tss_table(files, models, tmp_path):
    """A model that reads features and predicts two outputs; genes without features are left unscored; a TSS table
    gives the windows the BED gives."""
    features = tmp_path / "features.tsv"
    features.write_text("gene_id\tf0\tf1\tf2\ngA\t0.5\t-1\t2\ngB\t0\t0.25\t-0.5\n")
    tss_table = tmp_path / "tss.tsv"
    rows = [f"{gene}\t{chrom}\t{tss(gene) + 1}\t{strand}" for gene, (chrom, _, _, strand) in GENES.items()]
    tss_table.write_text("gene_id\tchrom\ttss\tstrand\n" + "\n".join(rows) + "\n")
    records = [RECORDS[1], RECORDS[10]]  # gA and gB; gC
    vcf = write_vcf(tmp_path / "few.vcf", records)
    # In a 20,000-base TSS-table window the TSS sits at 10,000: the same 300 bases are 9850..10150.
    table = variant_effects(
        vcf, models["dna"], genome=files["genome"], tss_table=tss_table, window=(9_850, 10_150), features=features,
        device="cpu",
    )  # fmt: skip
    predictions = [f"{kind}_output_{output}" for output in range(2) for kind in ("ref_pred", "alt_pred", "delta")]
    assert list(table.columns[8:]) == [*predictions, "status"]
    assert table["gene"].tolist() == ["gA", "gB", "gC"]
    assert table["status"].tolist() == ["ok", "ok", "no_features"]
    change = dict(pos=1_251, ref=base(1_250), alt=other(base(1_250)))
    gene_features = {"gA": [0.5, -1, 2], "gB": [0, 0.25, -0.5]}
    for row, gene in enumerate(["gA", "gB"]):
        ref, alt = direct_predictions(
            models["dna"], [hand_window(gene), hand_window(gene, **change)], [gene_features[gene]] * 2
        )
        for output in range(2):
            assert table[f"ref_pred_output_{output}"][row] == pytest.approx(ref[output], abs=1e-6)
            assert table[f"delta_output_{output}"][row] == pytest.approx(alt[output] - ref[output], abs=2e-7)


def test_malformed_vcf_is_one_line_and_exit_code_2(files, tmp_path, capsys):
    broken = tmp_path / "broken.vcf"
    broken.write_text(
        "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
        f"chr1\t1081\t.\t{base(1_080)}\tA\t.\t.\t.\nchr1\tnot_a_number\t.\tA\tG\t.\t.\t.\nchr1\t12\n"
    )
    not_vcf = tmp_path / "table.vcf"
    not_vcf.write_text("gene\tvalue\nA\t1\n")
    output = tmp_path / "out.tsv"
    common = ["--genome", str(files["genome"]), "--bed", str(files["bed"]), "--window", *map(str, CROP),
              "-m", str(files["models"][0]), "-o", str(output)]  # fmt: skip
    for path, message in [(broken, "broken.vcf: record 2 (line 4, after chr1:1081) has POS 'not_a_number', not a "
                                   "whole number"),
                          (not_vcf, "table.vcf: cannot be read as VCF"),
                          (tmp_path / "absent.vcf", "absent.vcf: file not found")]:  # fmt: skip
        capsys.readouterr()
        assert main(["variant-effect", "--vcf", str(path), *common]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and "Traceback" not in error, error
        assert error.startswith(f"expression-perceiver variant-effect: error: {message}"), error
        assert not output.exists() and not list(tmp_path.glob(".out.tsv*"))


def test_a_window_longer_than_the_model_reads_is_refused(files):
    with pytest.raises(DataError, match="the model reads at most 300"):
        variant_effects(files["vcf"], files["models"][0], genome=files["genome"], bed=files["bed"], window=None)


def variant_command(files, vcf, output, *extra: str) -> list[str]:
    return ["variant-effect", "--vcf", str(vcf), "--genome", str(files["genome"]), "--bed", str(files["bed"]),
            "--window", *map(str, CROP), "-m", str(files["models"][0]), "-o", str(output), *extra]  # fmt: skip


def only_error_line(capsys) -> str:
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error, error
    return error.removeprefix("expression-perceiver variant-effect: error: ").rstrip("\n")


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([], "header.vcf: no variant records (a header only): nothing to score, nothing written"),
        (
            [RECORDS[7], RECORDS[8], RECORDS[5]],  # outside every window, an unknown chromosome, a REF mismatch
            "header.vcf: none of its 3 records was scored (status outside_windows 1, chromosome_not_in_genome 1, "
            "ref_mismatch 1; outside_windows: the variant lies outside every promoter window): nothing written",
        ),
    ],
)
def test_a_run_that_scores_no_variant_is_an_error_and_writes_nothing(files, tmp_path, capsys, records, message):
    vcf = write_vcf(tmp_path / "header.vcf", records)
    output, annotated = tmp_path / "effects.tsv", tmp_path / "annotated.vcf"
    assert main(variant_command(files, vcf, output, "--annotate-vcf", str(annotated))) == 2
    assert only_error_line(capsys) == message
    assert sorted(path.name for path in tmp_path.iterdir()) == ["header.vcf"]
    with pytest.raises(DataError, match="nothing written"):  # the Python API as well: no table of nothing
        variant_effects(vcf, files["models"][0], genome=files["genome"], bed=files["bed"], window=CROP)


def test_positions_outside_the_chromosome_have_their_own_status(files, tmp_path, capsys):
    """POS 0 and a POS (or a REF) past the chromosome's end are not `outside_windows`: the record is impossible."""
    records = [
        ("chr1", 0, "pos_zero", "A", ["G"]),
        ("chr1", 3_001, "past_end", "A", ["G"]),  # chr1 has 3,000 bases
        ("chr1", 3_000, "ref_past_end", CHR1[-1] + "A", [CHR1[-1]]),
        ("chr1", 3_000, "last_base", CHR1[-1], [other(CHR1[-1])]),  # a real base, outside every window
        RECORDS[0],
    ]
    vcf = write_vcf(tmp_path / "positions.vcf", records)
    output = tmp_path / "effects.tsv"
    assert main(variant_command(files, vcf, output)) == 0, capsys.readouterr().err
    header, rows = read_tsv(output)
    status = header.index("status")
    assert [(row[2], row[status]) for row in rows] == [
        ("pos_zero", "invalid_position"), ("past_end", "invalid_position"), ("ref_past_end", "invalid_position"),
        ("last_base", "outside_windows"), ("snv_a", "ok"),
    ]  # fmt: skip
    record = json.loads((tmp_path / "effects.tsv.json").read_text())
    assert record["counts"]["status"] == {"invalid_position": 3, "ok": 1, "outside_windows": 1}
    assert "POS is 0" in record["statuses"]["invalid_position"]


def test_a_model_that_reads_features_given_none_is_refused_before_any_record(files, models, tmp_path, capsys):
    output = tmp_path / "effects.tsv"
    arguments = variant_command(files, files["vcf"], output)
    arguments[arguments.index("-m") + 1] = str(models["dna"])  # reads 3 per-gene features
    assert main(arguments) == 2
    assert only_error_line(capsys) == (
        "the model reads 3 per-gene features and none were given: give a feature table (--features), or pass "
        "--fill-missing-features to fill them"
    )
    assert not output.exists() and not (tmp_path / "effects.tsv.json").exists()
    assert main([*arguments, "--fill-missing-features"]) == 0, capsys.readouterr().err
    counts = json.loads((tmp_path / "effects.tsv.json").read_text())["counts"]
    assert counts["status"]["ok"] == 15 and "no_features" not in counts["status"]
    assert counts["features_filled"] == counts["reference_windows"] + counts["alt_windows"]


def test_a_vcf_with_a_byte_order_mark_gives_the_table_of_the_same_file_without_it(files, tmp_path):
    bom = tmp_path / "bom.vcf"
    bom.write_bytes(b"\xef\xbb\xbf" + files["vcf"].read_bytes())
    predictor = Predictor.from_pretrained([files["models"][0]], device="cpu")
    common = dict(genome=files["genome"], bed=files["bed"], window=CROP)
    assert variant_effects(bom, predictor, **common).equals(variant_effects(files["vcf"], predictor, **common))
