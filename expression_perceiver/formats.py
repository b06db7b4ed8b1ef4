"""Facts of the input formats that every layer and the command line share, importable without torch, transformers
or datasets (so that `expression-perceiver --help` answers at once)."""

# Xpresso's promoter windows: 20,000 bases with the TSS at index 10,000.
XPRESSO_WINDOW_LENGTH = 20_000
XPRESSO_TSS_INDEX = 10_000
# Xpresso's best input: -7,000..+3,500 around the TSS.
XPRESSO_BEST_WINDOW = (3_000, 13_500)
XPRESSO_FULL_WINDOW = (0, XPRESSO_WINDOW_LENGTH)
XPRESSO_FEATURE_NAMES = ("UTR5LEN", "CDSLEN", "INTRONLEN", "UTR3LEN", "UTR5GC", "CDSGC", "UTR3GC", "ORFEXONDENSITY")

# Proteins longer than this are truncated when a dataset is prepared (and counted), unless asked otherwise.
DEFAULT_PROTEIN_MAX_LENGTH = 6_000

# A Protein&DNAPerceiver checkpoint keeps its second (amino-acid) tokenizer in this subfolder, beside the first.
PROTEIN_TOKENIZER_FOLDER = "protein_tokenizer"

# What inference reads: the kinds of input file, the splits of a prepared dataset folder, and which part of a
# sequence longer than the model reads is kept.
INPUT_KINDS = ("auto", "fasta", "table", "xpresso", "dataset", "genome")
DATASET_SPLITS = ("train", "validation", "test", "all")
CROP_RULES = ("start", "center", "end")
