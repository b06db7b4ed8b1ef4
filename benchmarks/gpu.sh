#!/usr/bin/env bash
# GPU training cost of the DNAPerceiver in one call of under 10 minutes on one H100 or H200 (see bench_gpu.py):
# bf16 training throughput at 10,500 and 20,000 positions with peak memory, one Xpresso-sized epoch, runs sharing
# the GPU, and the projected GPU-hours of the 50-run grid at the 400-epoch cap; then a two-cell masking study end to
# end (benchmarks/gpu_study.py) with its per-cell time and the paper's grid projected from it.
#
#   bash benchmarks/gpu.sh           # on the GPU machine; results in $OUT (or a temporary folder)
#   bash benchmarks/gpu.sh --tiny    # dry run on CPU with tiny sizes
#
# Nothing is installed: the machine's python3 must hold torch, transformers, tokenizers and numpy (the GPU image
# does), and this checkout is put on PYTHONPATH. PYTHON overrides the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${PYTHON:-}" ]]; then
    PYTHON=python3
    if [[ " $* " == *" --tiny "* && -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
# CPU threads wait without spinning: on a shared CPU (the --tiny dry run) spinning stalls every parallel operation.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
OUTPUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUTPUT"
{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "no nvidia-smi: CPU run"
    "$PYTHON" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
    "$PYTHON" benchmarks/bench_gpu.py --output "$OUTPUT" "$@"
    # A two-cell masking study end to end (needs the package's own dependencies: datasets, h5py, submitit, ...).
    if "$PYTHON" -c "import datasets, h5py, accelerate, submitit, scipy, matplotlib" 2>/dev/null; then
        "$PYTHON" benchmarks/gpu_study.py --output "$OUTPUT/study" "$@"
    else
        echo "two-cell study: skipped, this interpreter lacks the package's dependencies (pip install -e . first)"
    fi
} 2>&1 | tee "$OUTPUT/gpu_log.txt"
echo "results in $OUTPUT"
