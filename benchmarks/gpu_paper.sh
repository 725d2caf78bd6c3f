#!/usr/bin/env bash
# The GPU machine's command for benchmarks/gpu_paper.py (its docstring says how to prepare the
# carried folders): install the wheels carried in .whl (pydantic, which that machine's Python
# lacks), put the three packages on the path, read the data packed in runs/gpu_data, run the
# script with the given options; NPROC=N starts N processes through accelerate.
#
#   bash benchmarks/gpu_paper.sh --json "$OUT/paper.json"       # carry: .whl, runs/gpu_data
set -euo pipefail
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="shared/src:packages/invrat/src:packages/rational_lamol/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
args=(--data-root runs/gpu_data/data "$@")
if [ "${NPROC:-1}" -gt 1 ]; then
    exec python3 -m accelerate.commands.launch --num_processes "$NPROC" benchmarks/gpu_paper.py "${args[@]}"
fi
exec python3 benchmarks/gpu_paper.py "${args[@]}"
