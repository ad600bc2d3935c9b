#!/usr/bin/env bash
# One prepared run for a lent GPU machine: the full-size timings of benchmarks/compare.py, tables under $OUT.
# That machine reaches no network and its image lacks diffusers and soundfile (it has torch, transformers,
# accelerate, tqdm, typer, matplotlib): carry them as wheels in .whl/ (see the device tool's README), e.g.
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform any -d .whl \
#     diffusers==0.42.1 soundfile cffi pycparser importlib_metadata zipp torchsde trampoline
# and run this script with carry [".whl"]: `bash benchmarks/gpu_session.sh 1`, then `... 2` (each within one call's
# 600 s), or with no argument for both.
set -uo pipefail
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, diffusers; print('torch', torch.__version__, 'diffusers', diffusers.__version__)" | tee -a "$OUT/gpu.txt"
PART=${1:-all}  # one device call may run 600 s: "1" (about 410 s) and "2" (about 270 s) fit one each
if [ "$PART" != 2 ]; then
  timeout 170 python3 benchmarks/compare.py panorama --full 2>"$OUT/panorama.log" | tee "$OUT/panorama.md"
  timeout 240 python3 benchmarks/compare.py audio --full --seconds 10.24 24 96 2>"$OUT/audio.log" | tee "$OUT/audio.md"
fi
if [ "$PART" != 1 ]; then
  timeout 120 python3 benchmarks/compare.py audio --full --seconds 600 --steps 20 --memory-gib 24 \
    2>"$OUT/audio600.log" | tee "$OUT/audio600.md"
  timeout 150 python3 benchmarks/compare.py audio --full --seconds 24 96 --safa-only --compile \
    2>"$OUT/audio-compiled.log" | tee "$OUT/audio-compiled.md"
fi
