"""Readers, writers and generators that turn biologists' files into Hugging Face datasets."""

from .dataset_dict import (
    METADATA_FILE,
    DatasetMetadata,
    SplitSpec,
    build_dataset_dict,
    joint_label_transform,
    load_dataset_dir,
    save_dataset,
    split_by_chromosome,
    split_by_gene,
)
from .errors import DataError, ReadReport
from .genome import Genome, PromoterWindow, read_promoter_bed, rebuild_promoter_records, reverse_complement
from .synthetic import SyntheticSet, generate_positional_promoters, generate_promoters, generate_proteins
from .tables import (
    LabelSpec,
    ProteinTable,
    read_fasta,
    read_fasta_with_labels,
    read_label_table,
    read_protein_table,
    read_sequence_table,
)
from .xpresso import XPRESSO_BEST_WINDOW, XPRESSO_FEATURE_NAMES, read_xpresso_h5, write_xpresso_h5

__all__ = [
    "SyntheticSet",
    "generate_promoters",
    "generate_positional_promoters",
    "generate_proteins",
    "DataError",
    "ReadReport",
    "DatasetMetadata",
    "SplitSpec",
    "LabelSpec",
    "ProteinTable",
    "METADATA_FILE",
    "XPRESSO_BEST_WINDOW",
    "XPRESSO_FEATURE_NAMES",
    "build_dataset_dict",
    "joint_label_transform",
    "save_dataset",
    "load_dataset_dir",
    "split_by_gene",
    "split_by_chromosome",
    "read_xpresso_h5",
    "write_xpresso_h5",
    "Genome",
    "PromoterWindow",
    "read_promoter_bed",
    "rebuild_promoter_records",
    "reverse_complement",
    "read_sequence_table",
    "read_label_table",
    "read_protein_table",
    "read_fasta",
    "read_fasta_with_labels",
]
