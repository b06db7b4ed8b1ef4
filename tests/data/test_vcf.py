"""VCF records read with pysam (plain and bgzip), one-line errors for files that are not VCF, the file written back with
an INFO field, and TSS tables laid out as Xpresso's windows."""

import pysam
import pytest

from expression_perceiver.data.errors import DataError
from expression_perceiver.data.genome import PromoterWindow, read_tss_table
from expression_perceiver.data.vcf import AnnotatedVcfWriter, VcfReader, info_value

VCF = (
    "##fileformat=VCFv4.2\n##contig=<ID=chr1,length=1000>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ts1\n"
    "chr1\t10\trs1\tA\tG,T\t50\tPASS\tDP=3\tGT\t0/1\n"
    "chr1\t20\t.\tAC\tA\t.\t.\t.\tGT\t1/1\n"
    "chr2\t5\t.\tG\t<DEL>\t.\t.\t.\tGT\t0/1\n"
    "chr2\t7\t.\tG\t.\t.\t.\t.\tGT\t0/0\n"
)


def test_records_of_plain_and_bgzip_files(tmp_path):
    plain = tmp_path / "calls.vcf"
    plain.write_text(VCF)
    compressed = tmp_path / "calls.vcf.gz"
    pysam.tabix_compress(str(plain), str(compressed))
    for path in (plain, compressed):
        with VcfReader(path) as reader:
            records = list(reader.records())
        assert [(r.chrom, r.pos, r.id, r.ref, r.alts) for r in records] == [
            ("chr1", 10, "rs1", "A", ("G", "T")),
            ("chr1", 20, ".", "AC", ("A",)),
            ("chr2", 5, ".", "G", ("<DEL>",)),
            ("chr2", 7, ".", "G", ()),
        ]
        assert [r.index for r in records] == [0, 1, 2, 3]


def test_files_that_are_not_vcf_are_one_line_errors(tmp_path):
    bad_line = tmp_path / "bad.vcf"
    bad_line.write_text(VCF + "chr1\tx\t.\tA\tG\t.\t.\t.\tGT\t0/1\n")
    message = r"^bad.vcf: record 5 \(line 8, after chr2:7\) has POS 'x', not a whole number$"
    with VcfReader(bad_line) as reader, pytest.raises(DataError, match=message):
        list(reader.records())
    text = tmp_path / "table.vcf"
    text.write_text("a\tb\n1\t2\n")
    with pytest.raises(DataError, match="table.vcf: cannot be read as VCF"):
        VcfReader(text)
    with pytest.raises(DataError, match="absent.vcf: file not found"):
        VcfReader(tmp_path / "absent.vcf")


@pytest.mark.parametrize("name", ["annotated.vcf", "annotated.vcf.gz"])
def test_written_back_with_an_info_field(tmp_path, name):
    source = tmp_path / "calls.vcf"
    source.write_text(VCF)
    target = tmp_path / name
    with VcfReader(source) as reader:
        writer = AnnotatedVcfWriter(reader, target, "EP_EFFECT", ".", 'A "quoted" description')
        for record in reader.records():
            writer.write(record, [f"{alt}|gene 1;x|ok" for alt in record.alts])
        writer.commit()
    assert not list(tmp_path.glob(".annotated*"))  # no temporary file left
    if name.endswith(".gz"):
        assert (tmp_path / (name + ".tbi")).is_file() == writer.indexed
    with pysam.VariantFile(str(target)) as handle:
        assert handle.header.info["EP_EFFECT"].description == "A 'quoted' description"
        records = list(handle)
    assert records[0].info["EP_EFFECT"] == ("G|gene_1_x|ok", "T|gene_1_x|ok")
    assert records[0].info["DP"] == "3" and records[0].samples["s1"]["GT"] == (0, 1)
    assert "EP_EFFECT" not in records[3].info  # nothing to add: the record as it was
    assert info_value("a b,c;d=e") == "a_b_c_d_e"


def test_tss_tables_give_windows_centred_as_xpresso_s(tmp_path):
    table = tmp_path / "tss.tsv"
    table.write_text("gene_id\tchrom\ttss\tstrand\ng1\tchr1\t15001\t+\ng2\t2\t15001\t-\n")
    plus, minus = read_tss_table(table)
    # 0-based TSS 15,000 at index 10,000 of the window on the gene's strand.
    assert plus == PromoterWindow("g1", "chr1", 5_000, 25_000, "+", 2)
    assert minus == PromoterWindow("g2", "2", 5_001, 25_001, "-", 3)
    assert minus.end - 1 - 10_000 == 15_000
    table.write_text("gene_id\tchrom\ttss\tstrand\ng1\tchr1\tten\t+\n")
    with pytest.raises(DataError, match="tss.tsv: line 2 \\(gene g1\\) has tss 'ten'"):
        read_tss_table(table)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("chr1\t12x\t.\tA\tG\t.\t.\t.", "has POS '12x', not a whole number"),
        ("chr1\t-5\t.\tA\tG\t.\t.\t.", "has POS '-5', not a whole number"),
        ("chr1\t1.5\t.\tA\tG\t.\t.\t.", "has POS '1.5', not a whole number"),
        ("chr1\t12\t.\tA", "has 4 tab-separated column(s); a VCF record needs at least 8 (CHROM POS ID REF ALT"),
        ("chr1 12 . A G . . .", "has 1 tab-separated column(s)"),
        ("", "is an empty line"),
    ],
)
@pytest.mark.parametrize("compressed", [False, True])
def test_a_record_line_that_cannot_be_parsed_names_the_record_line_and_field(tmp_path, line, problem, compressed):
    """htslib says only "truncated file" (or "unable to parse next record"): the line itself says what is wrong."""
    plain = tmp_path / "calls.vcf"
    plain.write_text(VCF + line + "\nchr1\t30\t.\tA\tG\t.\t.\t.\tGT\t0/1\n")
    path = plain
    if compressed:
        path = tmp_path / "calls.vcf.gz"
        pysam.tabix_compress(str(plain), str(path))
    with VcfReader(path) as reader, pytest.raises(DataError) as raised:
        list(reader.records())
    assert str(raised.value).startswith(f"{path.name}: record 5 (line 8, after chr2:7) {problem}")
    assert "\n" not in str(raised.value) and "truncated" not in str(raised.value)


@pytest.mark.parametrize("compressed", [False, True])
def test_a_vcf_starting_with_a_byte_order_mark_is_read_as_without_it(tmp_path, compressed):
    plain = tmp_path / "bom.vcf"
    plain.write_bytes(b"\xef\xbb\xbf" + VCF.encode())
    path = plain
    if compressed:
        path = tmp_path / "bom.vcf.gz"
        pysam.tabix_compress(str(plain), str(path))
    reference = tmp_path / "plain.vcf"
    reference.write_text(VCF)
    with VcfReader(reference) as reader:
        expected = [(r.chrom, r.pos, r.id, r.ref, r.alts) for r in reader.records()]
    reader = VcfReader(path)
    copy = reader.source
    assert reader.byte_order_mark and copy != path and copy.parent != tmp_path  # a copy outside the user's folder
    assert [(r.chrom, r.pos, r.id, r.ref, r.alts) for r in reader.records()] == expected
    reader.close()
    assert not copy.exists()  # the copy goes with the reader
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({plain.name, path.name, reference.name})
