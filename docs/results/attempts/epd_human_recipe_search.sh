#!/bin/bash
# Recipe search for the EPD human DNAPerceiver (configs/epd_human_dna_perceiver.yaml), judged on the validation split
# only: each attempt changes one thing of the committed recipe and runs with seeds 0 and 1. Resumable (a run whose
# results.json exists is skipped). Run from the repository's root after preparing outputs/data/epd_human:
#   bash docs/results/attempts/epd_human_recipe_search.sh
# then summarise into docs/results/attempts/epd_human_recipe_search.tsv:
#   python docs/results/attempts/summarise_attempts.py outputs/attempts/epd_human > docs/results/attempts/epd_human_recipe_search.tsv
set -u
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 OMP_NUM_THREADS=1
# shellcheck source=run_attempt.sh
source "$(dirname "$0")/run_attempt.sh"
RECIPE=configs/epd_human_dna_perceiver.yaml
SHAPE="max_sequence_length=60,conv_stem_pool_size=2,conv_tower_pool_size=2,conv_pooled_positions=8"
declare -A ATTEMPTS=(
  [recipe]=""
  [lr_1e-3]="--learning_rate 0.001"
  [lr_1e-4]="--learning_rate 0.0001"
  [dropout_0.5]="--config_overrides $SHAPE,num_latents=32,dropout=0.5"
  [latents_64]="--config_overrides $SHAPE,num_latents=64,dropout=0.3"
  [no_masking]="--mask_strategy none"
)
for name in recipe lr_1e-3 lr_1e-4 dropout_0.5 latents_64 no_masking; do
  for seed in 0 1; do
    # shellcheck disable=SC2086
    run_attempt epd_human $RECIPE "$name" "$seed" ${ATTEMPTS[$name]}
  done
done
echo ALLDONE
