#!/usr/bin/env bash
# README walk-through: every command of README.md's code blocks (bash and python), in order, run as written against
# stand-in inputs of the same kind built in a temporary folder (generated promoters, proteins and Xpresso HDF5
# folders; a chr20 genome of random bases under the real Xpresso hg38 windows of chr20:48-54 Mb, with its BED, TSS
# table, labels, half-life features and a VCF; tiny trained models standing in for `org/name`, `runs/seedN`, `MODEL`
# and `PROTEIN_MODEL`). Each command prints PASS or FAIL with its exit code (SKIP with the reason for what cannot run
# on one CPU machine: several GPUs or nodes, SLURM, Hub pushes, the 45-cell study grid); CHECK lines compare an
# output with what README.md shows next to the command. A command whose output name an earlier README command has
# already written (README.md lists alternatives one after the other) is first run in the README-order folder, where
# it is refused (an ORDER line with its message, not counted), then in a folder of its own (PASS/FAIL).
#
#   bash benchmarks/readme_walkthrough.sh
#
#   REPO=DIR         the checkout walked: its README.md, configs/, studies/, train.py, Makefile and package (put first
#                    on PYTHONPATH); default: this script's repository. DIR/.venv must exist (`make demo` makes it).
#   SHARED_DATA=DIR  the real data folder (default: REPO/../shared/data): the EPD table (study section) and the
#                    Xpresso hg38 BED (the genome stand-in's windows). Without it those commands are skipped.
#   KEEP=1           keep the working folder (printed first) instead of deleting it.
#   RUN_MAKE_TEST=1  also run `make test` (the test suite, about 5.5 minutes); skipped by default.
#
# Takes about 15-25 minutes on a 2-core CPU, mostly two full demo trainings (`make demo` and `accelerate launch
# train.py`, 4-8 minutes each); the Xpresso masking recipe on 40 generated windows takes about 3 minutes, everything
# else seconds. Nothing is written inside REPO: all outputs go to the temporary folder (HF_HOME included).
# Exit status: 0 when every command run passed, 1 when any failed.
set -u
START=$(date +%s)
REPO="${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
REPO="$(cd "$REPO" && pwd)"
SHARED_DATA="${SHARED_DATA:-$REPO/../shared/data}"
VENV="$REPO/.venv"
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "no $VENV: create it first (make demo)" >&2
    exit 2
fi
W="$(mktemp -d "${TMPDIR:-/tmp}/readme_walk.XXXXXX")"
if [[ "${KEEP:-0}" != 1 ]]; then trap 'rm -rf "$W"' EXIT; fi
mkdir -p "$W/logs" "$W/alone"
export PATH="$VENV/bin:$PATH" PYTHONPATH="$REPO" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
export HF_HOME="$W/hf_home" MPLBACKEND=Agg
echo "repository: $REPO ($(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo 'not a git checkout'))"
echo "working folder: $W"
echo "shared data: $SHARED_DATA"

PASSED=0 FAILED=0 SKIPPED=0 CHECKS_DIFFER=0
declare -a SUMMARY=()

# The README's text, whitespace and line continuations folded, to notice a command that is no longer there.
README_FLAT="$(sed -e 's/\\$//' "$REPO/README.md" | tr -s ' \n' '  ')"
in_readme() {
    local flat
    flat="$(printf '%s' "$1" | sed -e 's/\\$//' | tr -s ' \n' '  ')"
    [[ "$README_FLAT" == *"$flat"* ]] || echo "  NOTE: this command is no longer in README.md as written here: $flat"
}

error_line() {  # the line that says what went wrong: the last 'error' line of a log, else its last line
    local line
    line="$(grep -E 'error|Error' "$1" | grep -v -E '^\s*(raise|File |subprocess\.|Traceback)' | tail -1)"
    [[ -n "$line" ]] || line="$(tail -1 "$1")"
    printf '%s' "${line:0:400}"
}

# step ID DIR README_COMMAND [SUBSTITUTED_COMMAND [SUBSTITUTION_NOTE [TIMEOUT_S]]]
step() {
    local id=$1 dir=$2 original=$3 command=${4:-} note=${5:-} limit=${6:-900}
    [[ -n "$command" ]] || command=$original
    local log="$W/logs/$id.log" t0 rc
    echo
    echo "=== $id: $original"
    [[ "$original" == "python block holding"* ]] || in_readme "$original"
    [[ -z "$note" ]] || echo "  substitution: $note"
    [[ "$command" == "$original" ]] || echo "  run as: $command"
    t0=$(date +%s)
    (cd "$dir" && timeout "$limit" bash -c "$command") >"$log" 2>&1
    rc=$?
    local took=$(($(date +%s) - t0))
    if [[ $rc == 0 ]]; then
        PASSED=$((PASSED + 1))
        echo "PASS $id (exit 0, ${took} s)"
        SUMMARY+=("PASS  $id  exit 0  ${took} s")
    else
        FAILED=$((FAILED + 1))
        echo "FAIL $id (exit $rc, ${took} s): $(error_line "$log")"
        SUMMARY+=("FAIL  $id  exit $rc  ${took} s: $(error_line "$log")")
    fi
    return $rc
}

skip() {  # skip ID README_COMMAND REASON
    SKIPPED=$((SKIPPED + 1))
    echo
    echo "=== $1: $2"
    in_readme "$2"
    echo "SKIP $1: $3"
    SUMMARY+=("SKIP  $1: $3")
}

# order ID DIR COMMAND: the command in the README-order folder, where an earlier command wrote its output (not counted).
order() {
    local log="$W/logs/$1.order.log" rc
    (cd "$2" && timeout 600 bash -c "$3") >"$log" 2>&1
    rc=$?
    if [[ $rc == 0 ]]; then
        echo "ORDER $1: in README order it also runs (exit 0)"
    else
        echo "ORDER $1: in README order it exits $rc: $(error_line "$log")"
    fi
    SUMMARY+=("ORDER $1  exit $rc in README order")
}

check() {  # check DESCRIPTION CONDITION_COMMAND: compares an output with what README.md shows
    if eval "$2" >/dev/null 2>&1; then
        echo "CHECK ok: $1"
    else
        CHECKS_DIFFER=$((CHECKS_DIFFER + 1))
        echo "CHECK differs: $1"
        SUMMARY+=("CHECK differs: $1")
    fi
}

alone() {  # alone ID NAME...: a fresh folder for one command, holding links to the named inputs of the work folder
    local dir="$W/alone/$1"
    shift
    mkdir -p "$dir"
    for name in "$@"; do
        mkdir -p "$dir/$(dirname "$name")"
        ln -sfn "$W/$name" "$dir/$name"
    done
    echo "$dir"
}

# A README python block, found by a line it holds, with placeholder substitutions, run statement by statement;
# each expression statement's value is printed (the README shows some of them as comments).
cat >"$W/run_block.py" <<'PY'
import ast, re, sys
readme, marker, *pairs = sys.argv[1:]
blocks = [b for b in re.findall(r"^```python\n(.*?)^```", open(readme).read(), flags=re.M | re.S) if marker in b]
assert len(blocks) == 1, f"{len(blocks)} python blocks of README.md hold {marker!r}"
source = blocks[0]
for old, new in zip(pairs[::2], pairs[1::2]):
    assert old in source, f"placeholder {old!r} is not in the block"
    source = source.replace(old, new)
print(source, "-" * 40, sep="\n", flush=True)
namespace = {}
for node in ast.parse(source).body:
    if isinstance(node, ast.Expr):
        value = eval(compile(ast.Expression(node.value), "README.md", "eval"), namespace)
        text = repr(value)
        print(f"line {node.lineno}: {text[:600]}{' ...' if len(text) > 600 else ''}", flush=True)
    else:
        exec(compile(ast.Module([node], type_ignores=[]), "README.md", "exec"), namespace)
for name in ("logits",):
    if name in namespace:
        print(f"{name}.shape = {tuple(namespace[name].shape)}")
PY
pyblock() {  # pyblock MARKER [OLD NEW ...]: the command line `step` runs for a python block
    local args=""
    for part in "$@"; do args+=" $(printf '%q' "$part")"; done
    echo "python $W/run_block.py $(printf '%q' "$REPO/README.md")$args"
}

# ---------------------------------------------------------------------------------------------------------------------
# The README-order folder: the repository's recipes, studies, train.py and Makefile (copies, so that paths read as in a
# checkout), its .venv (a link; pyproject.toml is copied with an older time than the venv's install stamp, so that
# `make demo` finds the venv installed and only trains), and the stand-in inputs.
cp -r "$REPO/configs" "$REPO/studies" "$REPO/train.py" "$REPO/Makefile" "$W/"
ln -s "$VENV" "$W/.venv"
cp "$REPO/pyproject.toml" "$W/pyproject.toml"
if [[ -e "$VENV/.installed" ]]; then touch -d "@$(($(stat -c %Y "$VENV/.installed") - 60))" "$W/pyproject.toml"; fi

BED_SOURCE="$SHARED_DATA/xpresso_hg38_promoters.bed"
echo
echo "--- building stand-in inputs and models in $W"
t0=$(date +%s)
cat >"$W/build_standins.py" <<'PY'
"""Stand-in inputs for the README's commands, written into the folder argv[1]; argv[2] is the Xpresso hg38 BED."""
import csv
import gzip
import os
import sys
from pathlib import Path

import numpy as np
import pysam

W = Path(sys.argv[1]).resolve()
BED = Path(sys.argv[2])
os.chdir(W)
S = W / "standins"
S.mkdir(exist_ok=True)

from expression_perceiver.cli import main as cli
from expression_perceiver.data.synthetic import (
    generate_positional_promoters, generate_promoters, generate_proteins, write_table, write_xpresso_folder,
)
from expression_perceiver.formats import XPRESSO_FEATURE_NAMES


def run(argv):
    if cli(argv):
        raise SystemExit(f"stand-in step failed: {' '.join(argv)}")


def write_tsv(path, header, rows, opener=open):
    with opener(path, "wt", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def write_fasta(path, records, opener=open):
    with opener(path, "wt") as handle:
        for name, sequence in records:
            handle.write(f">{name}\n" + "".join(sequence[i : i + 60] + "\n" for i in range(0, len(sequence), 60)))


# Promoters: 1,000 bases, 8 half-life-like features (FASTA without features, a table with Xpresso's feature names).
prom = generate_promoters(240, length=1_000, seed=1)
write_table(prom, str(S / "promoters_table.tsv"))
first = list(zip(prom.gene_id[:20], prom.sequence[:20]))
write_fasta(W / "promoters.fa", first)
write_fasta(W / "promoters.fa.gz", first, gzip.open)
write_tsv(W / "genes.tsv", ["gene_id", "sequence", *XPRESSO_FEATURE_NAMES],
          [[g, s, *map(float, f)] for g, s, f in zip(prom.gene_id[:20], prom.sequence[:20], prom.features[:20])])

# Proteins: 100-1,000 residues. A PaxDb-like table (abundance_ppm), a FASTA + labels, a FASTA holding P12345, and
# proteins joined to the promoters' genes (Protein&DNAPerceiver training and the --proteins table).
prot = generate_proteins(200, seed=2)
write_tsv(W / "proteome.tsv.gz", ["gene_id", "abundance_ppm", "sequence"],
          [[g, float(10 ** v), s] for g, v, s in zip(prot.gene_id, prot.label, prot.sequence)], gzip.open)
write_table(prot, str(S / "proteins_table.tsv"))
write_fasta(W / "proteins.fa.gz", zip(prot.gene_id, prot.sequence), gzip.open)
write_tsv(W / "abundance.tsv", ["gene_id", "label"], [[g, float(v)] for g, v in zip(prot.gene_id, prot.label)])
write_fasta(W / "proteins.fa", [("P12345 stand-in", prot.sequence[0]), *zip(prot.gene_id[1:20], prot.sequence[1:20])])
write_tsv(S / "joint_proteins.tsv", ["gene_id", "sequence", "label"],
          [[g, prot.sequence[i % 200], float(prot.label[i % 200])] for i, g in enumerate(prom.gene_id)])
write_tsv(W / "proteome.tsv", ["gene_id", "sequence"], [[g, prot.sequence[i]] for i, g in enumerate(prom.gene_id[:20])])

# Xpresso-format HDF5 folders: 20,000-base windows, TSS at 10,000, 8 features; split 80/10/10.
write_xpresso_folder(generate_positional_promoters(40, length=20_000, seed=3), W / "xpresso_human")
write_xpresso_folder(generate_positional_promoters(40, length=20_000, seed=4), W / "xpresso_human_h5")
write_xpresso_folder(generate_positional_promoters(60, length=20_000, seed=5), S / "xpresso_train_h5")

# A genome: chr20 (the BED says 20: the chr alias is resolved), N up to 47.95 Mb, random bases to 54.05 Mb, under
# the real Xpresso windows of chr20:48-54 Mb (ENSG00000000419 among them); plain FASTA and bgzip.
LOW, HIGH = 48_000_000, 54_000_000
if BED.is_file():
    rows = [line.split("\t") for line in BED.read_text().splitlines()]
    rows = [r for r in rows if r[0] == "20" and int(r[1]) > LOW and int(r[2]) < HIGH]
else:  # without the shared data: ENSG00000000419's window and 30 generated ones
    rows = [["20", "50948531", "50968531", "ENSG00000000419", "0", "-"]] + [
        ["20", str(s), str(s + 20_000), f"ENSGSTANDIN{i:05d}", "0", "+-"[i % 2]]
        for i, s in enumerate(range(LOW + 100_000, HIGH - 100_000, 190_000)) if abs(s - 50_948_531) > 40_000
    ][:30]
assert any(r[3] == "ENSG00000000419" for r in rows)
for name in ("xpresso_hg38_promoters.bed", "promoters.bed"):
    (W / name).write_text("".join("\t".join(r) + "\n" for r in rows))
rng = np.random.default_rng(6)
length = HIGH + 50_000
chrom = np.full(length, ord("N"), dtype=np.uint8)
chrom[LOW - 50_000 :] = np.frombuffer(b"ACGT", np.uint8)[rng.integers(0, 4, length - LOW + 50_000)]
text = chrom.tobytes().decode("ascii")
write_fasta(W / "hg38.fa", [("chr20 stand-in", text)])
pysam.tabix_compress(str(W / "hg38.fa"), str(W / "hg38.fa.gz"), force=True)
genes = [r[3] for r in rows]
write_tsv(W / "labels.tsv", ["gene_id", "label"], [[g, float(v)] for g, v in zip(genes, rng.normal(size=len(genes)))])
write_tsv(W / "half_life.tsv", ["gene_id", *XPRESSO_FEATURE_NAMES], [[g, *map(float, rng.normal(size=8))] for g in genes])
tss = {r[3]: (int(r[1]) + 10_000 if r[5] == "+" else int(r[2]) - 1 - 10_000) + 1 for r in rows}  # 1-based
write_tsv(W / "tss.tsv", ["gene_id", "chrom", "tss", "strand"], [[r[3], "chr20", tss[r[3]], r[5]] for r in rows])

# A VCF around ENSG00000000419's TSS (minus strand: upstream is higher) and in five other windows: SNVs, an insertion,
# a deletion, a multi-allelic record, a symbolic allele, a REF mismatch, one record outside every window.
def base(pos):
    return text[pos - 1]


def other(letter):
    return {"A": "G", "C": "T", "G": "A", "T": "C"}[letter]


t = tss["ENSG00000000419"]
records = [(t - off, f"snv{i}", base(t - off), other(base(t - off))) for i, off in enumerate((-3000, -500, -50, 0, 40, 800, 2500))]
records += [
    (t - 200, "ins1", base(t - 200), base(t - 200) + "ACGTAC"),
    (t + 100, "del1", text[t + 99 : t + 107], base(t + 100)),
    (t - 1200, "multi1", base(t - 1200), ",".join(b for b in "ACGT" if b != base(t - 1200))),
    (t - 1500, "sym1", base(t - 1500), "<DEL>"),
    (t - 1700, "mismatch1", other(base(t - 1700)), base(t - 1700)),
    (LOW - 1_000_000, "outside1", "N", "A"),
]
records += [(tss[g] + 300, f"{g}_v", base(tss[g] + 300), other(base(tss[g] + 300))) for g in genes[:5] if g != "ENSG00000000419"]
records.sort()
header = ["##fileformat=VCFv4.2", f"##contig=<ID=chr20,length={length}>",
          '##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">', "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
(W / "calls.vcf").write_text("\n".join(header + [f"chr20\t{p}\t{i}\t{r}\t{a}\t.\tPASS\tDP=10" for p, i, r, a in records]) + "\n")
pysam.tabix_compress(str(W / "calls.vcf"), str(W / "calls.vcf.gz"), force=True)
pysam.tabix_index(str(W / "calls.vcf.gz"), preset="vcf", force=True)

# Tiny trained models: runs/seed0-2 (DNA, no per-gene features), runs/feat_seed0-2 (DNA with Xpresso's 8 features,
# 10,500-base windows), runs/protein (ProteinPerceiver), runs/joint (Protein&DNAPerceiver, two outputs).
run(["prepare", "table", str(S / "promoters_table.tsv"), "--alphabet", "dna", "-o", str(S / "data/promoters")])
run(["prepare", "xpresso", str(S / "xpresso_train_h5"), "-o", str(S / "data/xpresso")])
run(["prepare", "table", str(S / "proteins_table.tsv"), "--alphabet", "protein", "-o", str(S / "data/proteins")])
run(["prepare", "table", str(S / "promoters_table.tsv"), "--alphabet", "dna", "--protein-table", str(S / "joint_proteins.tsv"),
     "--protein-label-column", "label", "-o", str(S / "data/joint")])
tiny = ("num_latents=8,latent_dim=16,self_attention_heads=2,self_attention_head_dim=8,cross_attention_head_dim=8,"
        "conv_stem_channels=8,conv_tower_channels=[8, 8],conv_pooled_positions=4,branch_dim=8")
common = ["--config_overrides", tiny, "--max_steps", "4", "--per_device_train_batch_size", "16", "--use_cpu", "true",
          "--report_to", "none", "--disable_tqdm", "true", "--save_total_limit", "1", "--logging_strategy", "no"]
for seed in range(3):
    run(["train", "--dataset_dir", str(S / "data/promoters"), "--seed", str(seed), "--output_dir", f"runs/seed{seed}", *common])
    run(["train", "--dataset_dir", str(S / "data/xpresso"), "--seed", str(seed), "--output_dir", f"runs/feat_seed{seed}", *common])
run(["train", "--model_type", "protein_perceiver", "--dataset_dir", str(S / "data/proteins"), "--output_dir", "runs/protein", *common])
run(["train", "--model_type", "protein_dna_perceiver", "--dataset_dir", str(S / "data/joint"), "--output_dir", "runs/joint", *common])
print("stand-ins ready")
PY
if python "$W/build_standins.py" "$W" "$BED_SOURCE" >"$W/logs/standins.log" 2>&1; then
    echo "stand-ins ready ($(($(date +%s) - t0)) s)"
else
    echo "building the stand-ins failed: $(error_line "$W/logs/standins.log")"
    exit 1
fi
cat >"$W/RECIPE.yaml" <<'YAML'
# Stands in for RECIPE.yaml: the demo's generated promoters at a tiny size, 2 steps.
model_type: dna_perceiver
config_overrides: "num_latents=8,latent_dim=16,self_attention_heads=2,self_attention_head_dim=8,cross_attention_head_dim=8,conv_stem_channels=8,conv_tower_channels=[8, 8],conv_pooled_positions=4,branch_dim=8"
synthetic_num_genes: 300
synthetic_length: 1000
output_dir: runs/recipe
max_steps: 2
per_device_train_batch_size: 16
save_total_limit: 1
disable_tqdm: true
YAML

# --- Block 1 ---------------------------------------------------------------------------------------------------------
if (cd "$W" && make -n demo 2>/dev/null | grep -q "pip install"); then
    skip 1.1 "make demo" "the venv's install stamp is older than pyproject.toml: make would reinstall into $VENV"
else
    step 1.1 "$W" "make demo" "" "" 1800
    check "make demo: 789361 parameters (README: 0.79 M)" "grep -q 'with 789361 parameters' '$W/logs/1.1.log'"
    check "make demo: test r2 0.855 (README Figures)" "grep -q 'test r2 = 0.85[45]' '$W/logs/1.1.log'"
    echo "  make demo: $(grep -o 'test r2 = [0-9.]* (validation r2 = [0-9.]*) in [0-9]* s' "$W/logs/1.1.log") (README: 41 s for the run)"
fi
if [[ "${RUN_MAKE_TEST:-0}" == 1 ]]; then
    dir="$(alone 1.2)"
    tar -C "$REPO" --exclude=./.venv --exclude=./.git -cf - . | tar -C "$dir" -xf -
    ln -s "$VENV" "$dir/.venv" && cp -p "$W/pyproject.toml" "$dir/pyproject.toml"
    step 1.2 "$dir" "make test" "" "a copy of the repository" 1800
else
    skip 1.2 "make test" "the test suite (about 5.5 minutes); RUN_MAKE_TEST=1 runs it"
fi

# --- Block 2: the model block ----------------------------------------------------------------------------------------
step 2 "$W" "python block holding 'from expression_perceiver import NucleotideTokenizer'" \
    "$(pyblock 'from expression_perceiver import NucleotideTokenizer')"
check "model block: logits (2, 1)" "grep -q 'logits.shape = (2, 1)' '$W/logs/2.log'"

# --- Block 3: prepare ------------------------------------------------------------------------------------------------
step 3.1 "$W" "expression-perceiver prepare xpresso xpresso_human/ -o data/xpresso_human [--full-window]" \
    "expression-perceiver prepare xpresso xpresso_human/ -o data/xpresso_human" \
    "xpresso_human/ = 40 generated windows (generate xpresso); the optional [--full-window] left out"
step 3.1b "$W" "expression-perceiver prepare xpresso xpresso_human/ -o data/xpresso_human [--full-window]" \
    "expression-perceiver prepare xpresso xpresso_human/ -o data/xpresso_human_full --full-window" \
    "with [--full-window], into data/xpresso_human_full (the folder block 4's masking command names)"
GENOME_CMD='expression-perceiver prepare genome --genome hg38.fa.gz --bed xpresso_hg38_promoters.bed \
    --labels labels.tsv --half-life half_life.tsv -o data/xpresso_human --h5-dir data/xpresso_human_h5'
order 3.2 "$W" "$GENOME_CMD"
step 3.2 "$(alone 3.2 hg38.fa.gz xpresso_hg38_promoters.bed labels.tsv half_life.tsv)" "$GENOME_CMD" "" \
    "hg38.fa.gz = bgzip chr20 stand-in; xpresso_hg38_promoters.bed = the real BED's 31 rows on chr20:48-54 Mb; labels.tsv, half_life.tsv generated; own folder (3.1 wrote data/xpresso_human)"
step 3.3 "$W" "expression-perceiver prepare table proteome.tsv.gz --alphabet protein --label-column abundance_ppm --log10 -o data/proteome" "" \
    "proteome.tsv.gz = 200 generated proteins with an abundance_ppm column (gene_id, abundance_ppm, sequence)"
FASTA_CMD="expression-perceiver prepare fasta proteins.fa.gz --labels abundance.tsv --alphabet protein -o data/proteome"
order 3.4 "$W" "$FASTA_CMD"
step 3.4 "$(alone 3.4 proteins.fa.gz abundance.tsv)" "$FASTA_CMD" "" \
    "proteins.fa.gz, abundance.tsv (gene_id, label) = the 200 generated proteins; own folder (3.3 wrote data/proteome)"

# --- Block 4: training -----------------------------------------------------------------------------------------------
step 4.1 "$W" "accelerate launch train.py" "" "" 1800
check "4.1: the first log line names the demo recipe (recipe: configs/demo.yaml)" \
    "grep -q 'run: recipe: configs/demo.yaml\$' '$W/logs/4.1.log'"
order 4.2 "$W" "accelerate launch train.py --max_steps 2"
mkdir -p "$W/alone/4.2" && cp -r "$W/configs" "$W/train.py" "$W/alone/4.2/"
step 4.2 "$W/alone/4.2" "accelerate launch train.py --max_steps 2" "" "own folder (4.1 wrote outputs/demo)"
check "4.2: first log line 'recipe: configs/demo.yaml + command-line flags --max_steps 2'" \
    "grep -q 'run: recipe: configs/demo.yaml + command-line flags --max_steps 2\$' '$W/logs/4.2.log'"
step 4.3 "$W" "accelerate launch train.py configs/proteome_protein_perceiver.yaml" "" \
    "none: in README order, after 3.3 wrote data/proteome (the recipe reads dataset_dir outputs/data/proteome)"
mkdir -p "$W/outputs/data" && ln -sfn ../../data/proteome "$W/outputs/data/proteome"
step 4.3b "$W" "accelerate launch train.py configs/proteome_protein_perceiver.yaml" "" \
    "3.3's data/proteome (200 generated proteins) linked at the recipe's dataset_dir outputs/data/proteome" 1800
step 4.4 "$W" 'accelerate launch train.py configs/xpresso_human_dna_perceiver.yaml configs/masking/random_span.yaml \
    --dataset_dir data/xpresso_human_full --seed 3 --output_dir runs/random_span/seed3' "" \
    "data/xpresso_human_full = 3.1b's 40 generated 20,000-base windows" 1800
step 4.5 "$W" "expression-perceiver train --help"
echo "  (inline, README text under block 4) a misspelt flag:"
(cd "$W" && accelerate launch -q train.py --learning_rat 0.1) >"$W/logs/4.i.log" 2>&1
echo "  accelerate launch -q train.py --learning_rat 0.1 -> exit $? ($(grep -c Traceback "$W/logs/4.i.log") tracebacks)"
check "misspelt flag: 'unknown argument --learning_rat; did you mean --learning_rate?'" \
    "grep -q 'train.py: error: unknown argument --learning_rat; did you mean --learning_rate?' '$W/logs/4.i.log'"

# --- Block 5: one GPU, a node, a cluster -----------------------------------------------------------------------------
step 5.1 "$W" "accelerate launch --config_file configs/accelerate/single_gpu.yaml train.py RECIPE.yaml" "" \
    "RECIPE.yaml = a 2-step tiny demo recipe (output_dir runs/recipe); no GPU here: accelerate runs it on the CPU"
skip 5.2 "accelerate launch --config_file configs/accelerate/multi_gpu_node.yaml --num_processes 8 train.py RECIPE.yaml \\
    --per_device_train_batch_size 7" "8 GPUs on one node (NCCL); none here"
skip 5.3 'accelerate launch --config_file configs/accelerate/multi_node.yaml --num_machines 2 --num_processes 16 \
    --machine_rank $NODE_RANK --main_process_ip $MASTER_ADDR train.py RECIPE.yaml' "two GPU nodes; none here"

# --- Block 6: masking studies ----------------------------------------------------------------------------------------
EPD="$SHARED_DATA/epd_core_promoters_xpresso.tsv.gz"
if [[ -f "$EPD" ]]; then
    step 6.1 "$W" 'expression-perceiver prepare table path/to/epd_core_promoters_xpresso.tsv.gz --alphabet dna \
    --label-column label_human -o outputs/data/epd_human' \
        "expression-perceiver prepare table $EPD --alphabet dna --label-column label_human -o outputs/data/epd_human" \
        "path/to/ = the shared data folder (real EPD table, 12,642 genes)"
    step 6.2 "$W" "expression-perceiver study plan studies/epd_human_masking.yaml"
    check "6.2: 45 cells, 45 left" "grep -q '45 left' '$W/logs/6.2.log'"
    step 6.3 "$W" "expression-perceiver study plan studies/epd_human_masking.yaml --estimate" "" "" 900
    grep -E "ms per step|per cell|wall time" "$W/logs/6.3.log" | sed 's/^/  /'
else
    skip 6.1 "expression-perceiver prepare table path/to/epd_core_promoters_xpresso.tsv.gz ..." "no $EPD"
    skip 6.2 "expression-perceiver study plan studies/epd_human_masking.yaml" "needs 6.1 only for the estimate; skipped with it"
    skip 6.3 "expression-perceiver study plan studies/epd_human_masking.yaml --estimate" "no EPD data (6.1)"
fi
skip 6.4 "expression-perceiver study run studies/epd_human_masking.yaml --jobs 2" \
    "the full 45-cell grid (hours on 2 cores; 6.3 projects it)"
skip 6.5 "expression-perceiver study run studies/xpresso_human_masking.yaml --executor gpus [--cells-per-gpu 2]" \
    "needs GPUs and the Xpresso human data; the full grid"
skip 6.6 "expression-perceiver study run studies/xpresso_human_masking.yaml --executor slurm --partition gpu --time-min 1440" \
    "needs a SLURM cluster"
mkdir -p "$W/outputs" && cp -r "$REPO/docs/results/study_epd_human" "$W/outputs/study_epd_human"
step 6.7 "$W" "expression-perceiver study report outputs/study_epd_human" "" \
    "outputs/study_epd_human = a copy of the committed docs/results/study_epd_human (6.4 not run)"
check "6.7: the report re-rendered from the committed cells gives the committed table1.md" \
    "diff -q '$REPO/docs/results/study_epd_human/table1.md' '$W/outputs/study_epd_human/table1.md'"
diff "$REPO/docs/results/study_epd_human/table1.md" "$W/outputs/study_epd_human/table1.md" | grep '^>' | cut -c1-300 | sed 's/^/  re-rendered /'
mkdir -p "$W/docs/results" && cp -r "$REPO/docs/results/study_epd_human" "$W/docs/results/"
step 6.i1 "$W" "expression-perceiver study plan studies/epd_human_masking.yaml --output-dir docs/results/study_epd_human" "" \
    "(inline, under block 6) docs/results/study_epd_human = a copy of the committed folder"
check "6.i1: lists the 45 committed cells as done" "grep -q '45 done' '$W/logs/6.i1.log'"
step 6.i2 "$W" "expression-perceiver study report docs/results/study_epd_human" "" "(inline, under block 6) on the copy"

# --- Block 7: the Hub ------------------------------------------------------------------------------------------------
skip 7.1 "accelerate launch train.py RECIPE.yaml --push_to_hub true --hub_model_id org/name" \
    "pushes to the Hugging Face Hub (no network; offline)"

# --- Blocks 8 and 9: loading a checkpoint and the pipeline (outputs/demo: 1.1 and 4.1's demo run) --------------------
step 8 "$W" "python block holding 'AutoTokenizer.from_pretrained(\"org/name\"'" \
    "$(pyblock 'tokenizer = AutoTokenizer.from_pretrained("org/name"' '"org/name"' '"outputs/demo"')" \
    '"org/name" = "outputs/demo" (the demo checkpoint, with its own code: trust_remote_code)'
step 9 "$W" "python block holding 'regress = pipeline('" "$(pyblock 'regress = pipeline(')" \
    "outputs/demo = the demo checkpoint of 1.1/4.1"
grep '^line ' "$W/logs/9.log" | cut -c1-300 | sed 's/^/  /'
check "pipeline line 4 shows {'predictions': {'label': 3.23}, 'units': 'data', 'features_filled': True}" \
    "grep -qF \"line 4: {'predictions': {'label': 3.23\" '$W/logs/9.log' && grep -qF \"}, 'units': 'data', 'features_filled': True}\" '$W/logs/9.log'"

# --- Block 10: prediction and embeddings -----------------------------------------------------------------------------
step 10.1 "$W" "expression-perceiver predict promoters.fa.gz -m org/dna-perceiver@v1 -o predictions.tsv" \
    "expression-perceiver predict promoters.fa.gz -m runs/seed0 -o predictions.tsv" \
    "org/dna-perceiver@v1 = runs/seed0 (tiny DNA model, no features); promoters.fa.gz = 20 generated promoters (gzip)"
step 10.2 "$W" 'expression-perceiver predict genes.tsv --feature-column UTR5LEN ... -m runs/seed0 -m runs/seed1 -m runs/seed2 \
    --members -o ensemble.tsv' \
    "expression-perceiver predict genes.tsv --feature-column UTR5LEN --feature-column CDSLEN --feature-column INTRONLEN --feature-column UTR3LEN --feature-column UTR5GC --feature-column CDSGC --feature-column UTR3GC --feature-column ORFEXONDENSITY -m runs/feat_seed0 -m runs/feat_seed1 -m runs/feat_seed2 --members -o ensemble.tsv" \
    "'...' = the other 7 Xpresso --feature-column flags; runs/seedN = runs/feat_seedN (models that read 8 features)"
check "10.2: ensemble columns _mean, _std, n_models" "head -1 '$W/ensemble.tsv' | grep -q 'predicted_label_mean.predicted_label_std.n_models'"
step 10.3 "$W" "expression-perceiver predict xpresso_human_h5/test.h5 -m MODEL -o test.tsv" \
    "expression-perceiver predict xpresso_human_h5/test.h5 -m runs/feat_seed0 -o test.tsv" \
    "xpresso_human_h5/ = 40 generated windows; MODEL = runs/feat_seed0"
step 10.4 "$W" "expression-perceiver predict data/xpresso_human -m MODEL --split all -o all.tsv" \
    "expression-perceiver predict data/xpresso_human -m runs/feat_seed0 --split all -o all.tsv" \
    "data/xpresso_human = 3.1's dataset; MODEL = runs/feat_seed0"
step 10.5 "$W" 'expression-perceiver predict --bed promoters.bed --genome hg38.fa.gz -m MODEL \
    --features half_life.tsv -o genome.tsv' \
    "expression-perceiver predict --bed promoters.bed --genome hg38.fa.gz -m runs/feat_seed0 --features half_life.tsv -o genome.tsv" \
    "MODEL = runs/feat_seed0; promoters.bed, hg38.fa.gz, half_life.tsv = the genome stand-ins"
step 10.6 "$W" "expression-perceiver predict promoters.fa -m MODEL --proteins proteome.tsv -o joint.tsv" \
    "expression-perceiver predict promoters.fa -m runs/joint --proteins proteome.tsv -o joint.tsv" \
    "MODEL = runs/joint (tiny Protein&DNAPerceiver); proteome.tsv = gene_id, sequence for the 20 promoters' genes"
step 10.7 "$W" "expression-perceiver embed promoters.fa -m MODEL -o embeddings.npy" \
    "expression-perceiver embed promoters.fa -m runs/seed0 -o embeddings.npy" "MODEL = runs/seed0"
check "10.7: embeddings.ids.txt beside embeddings.npy" "test -s '$W/embeddings.ids.txt'"

# --- Block 11: the Python prediction API -----------------------------------------------------------------------------
PREDICT_BLOCK="$(pyblock 'from expression_perceiver import Predictor, predict' '"org/dna-perceiver@v1"' '"runs/seed0"')"
order 11 "$W" "$PREDICT_BLOCK"
step 11 "$(alone 11 runs promoters.fa.gz)" "python block holding 'from expression_perceiver import Predictor, predict'" \
    "$PREDICT_BLOCK" \
    '"org/dna-perceiver@v1" = "runs/seed0"; own folder (10.1 wrote predictions.tsv)'

# --- Block 12: variant effects and in-silico mutagenesis -------------------------------------------------------------
step 12.1 "$W" 'expression-perceiver variant-effect --vcf calls.vcf.gz --genome hg38.fa.gz --bed xpresso_hg38_promoters.bed \
    -m runs/seed0 -m runs/seed1 -m runs/seed2 -o effects.tsv --annotate-vcf calls.annotated.vcf.gz' "" \
    "calls.vcf.gz (bgzip + tabix), hg38.fa.gz, the BED and runs/seed0-2 = stand-ins"
check "12.1: annotated VCF carries EP_EFFECT" "zcat '$W/calls.annotated.vcf.gz' | grep -q 'EP_EFFECT='"
VE_CMD="expression-perceiver variant-effect --vcf calls.vcf --genome hg38.fa --tss-table tss.tsv -m runs/seed0 -o effects.tsv"
order 12.2 "$W" "$VE_CMD"
step 12.2 "$(alone 12.2 calls.vcf hg38.fa tss.tsv runs)" \
    "expression-perceiver variant-effect --vcf calls.vcf --genome hg38.fa --tss-table tss.tsv -m MODEL -o effects.tsv" \
    "$VE_CMD" "MODEL = runs/seed0; own folder (12.1 wrote effects.tsv)"
step 12.3 "$W" 'expression-perceiver mutagenesis --gene ENSG00000000419 --genome hg38.fa.gz --bed xpresso_hg38_promoters.bed \
    -m MODEL -o ENSG00000000419.npz --tsv ENSG00000000419.tsv' \
    "expression-perceiver mutagenesis --gene ENSG00000000419 --genome hg38.fa.gz --bed xpresso_hg38_promoters.bed -m runs/seed0 -o ENSG00000000419.npz --tsv ENSG00000000419.tsv" \
    "MODEL = runs/seed0"
check "12.3: ENSG00000000419.png written beside the .npz" "test -s '$W/ENSG00000000419.png'"
check "12.3: 1 + 3 x 2,000 = 6,001 sequences" "grep -q '6,001 sequences' '$W/logs/12.3.log'"
step 12.4 "$W" "expression-perceiver mutagenesis --region chr20:50958000-50959999:- --genome hg38.fa.gz -m MODEL -o region.npz" \
    "expression-perceiver mutagenesis --region chr20:50958000-50959999:- --genome hg38.fa.gz -m runs/seed0 -o region.npz" \
    "MODEL = runs/seed0"
step 12.5 "$W" "expression-perceiver mutagenesis --fasta proteins.fa --record P12345 -m PROTEIN_MODEL --scan 0 100 -o p12345.tsv" \
    "expression-perceiver mutagenesis --fasta proteins.fa --record P12345 -m runs/protein --scan 0 100 -o p12345.tsv" \
    "PROTEIN_MODEL = runs/protein (tiny ProteinPerceiver); proteins.fa holds a record P12345"
check "12.5: 19 x 100 substitutions in p12345.tsv" "test \$(tail -n +2 '$W/p12345.tsv' | wc -l) -eq 1900"

# --- Block 13: the Python variant and mutagenesis API ----------------------------------------------------------------
step 13 "$W" "python block holding 'from expression_perceiver import mutagenesis, variant_effects'" \
    "$(pyblock 'from expression_perceiver import mutagenesis, variant_effects')" \
    "calls.vcf.gz, runs/seed0-1, hg38.fa, promoters.bed = stand-ins"

# ---------------------------------------------------------------------------------------------------------------------
echo
echo "=== summary"
printf '%s\n' "${SUMMARY[@]}"
echo "passed $PASSED, failed $FAILED, skipped $SKIPPED; checks that differ from README.md: $CHECKS_DIFFER"
echo "wall time: $(($(date +%s) - START)) s"
[[ "${KEEP:-0}" == 1 ]] && echo "logs: $W/logs"
[[ $FAILED == 0 ]]
