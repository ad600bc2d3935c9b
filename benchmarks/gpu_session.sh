#!/usr/bin/env bash
# One prepared run for a lent GPU machine: benchmarks/gpu_targets.py in one process, its report under $OUT.
# That machine reaches no network and its image lacks diffusers and soundfile (it has torch, transformers,
# accelerate, tqdm, typer, matplotlib): carry them as wheels in .whl/ (see the device tool's README), e.g.
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform any -d .whl \
#     diffusers==0.42.1 soundfile cffi pycparser importlib_metadata torchsde trampoline
# and run `bash benchmarks/gpu_session.sh [SECTIONS]` with carry [".whl"] and a timeout of 560 s. The whole run took
# about 420 s on an H200 (panorama 150 s, audio 90 s, memory 25 s, compile 155 s for one length); SECTIONS
# (e.g. memory,compile) reruns only those.
set -uo pipefail
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
timeout 530 python3 benchmarks/gpu_targets.py --out "$OUT" --deadline 480 --sections "${1:-panorama,audio,memory,compile}" \
  2>"$OUT/log.txt"
