# Sourced by the recipe searches: run_attempt SEARCH RECIPE NAME SEED [FLAGS...] trains one attempt's run into
# outputs/attempts/SEARCH/NAME/seedSEED (skipped when its results.json exists; resumed from its last checkpoint when
# interrupted), logs to outputs/logs/attempt_SEARCH_NAME_seedSEED.log and keeps no weights but the selected model's.
run_attempt() {
  local search=$1 recipe=$2 name=$3 seed=$4
  shift 4
  local out=outputs/attempts/$search/$name/seed$seed
  [ -f "$out/results.json" ] && return 0
  mkdir -p outputs/logs
  .venv/bin/expression-perceiver train "$recipe" "$@" --seed "$seed" --output_dir "$out" \
    --resume_from_checkpoint auto > "outputs/logs/attempt_${search}_${name}_seed$seed.log" 2>&1
  rm -rf "$out"/checkpoint-*
}
