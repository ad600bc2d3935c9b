#!/usr/bin/env bash
# One prepared run for a lent GPU machine (see the README's Benchmarks): installs, checks the tests that a GPU
# changes (fp16, CUDA), then times the full-size architectures. Writes its tables under $OUT (or ./gpu-results).
set -uo pipefail
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
python3 -m pip install -q -e ".[test]" 2>&1 | tail -2
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/gpu.txt"
timeout 170 python3 benchmarks/compare.py panorama --full 2>"$OUT/panorama.log" | tee "$OUT/panorama.md"
timeout 240 python3 benchmarks/compare.py audio --full --seconds 10.24 24 96 2>"$OUT/audio.log" | tee "$OUT/audio.md"
timeout 120 python3 benchmarks/compare.py audio --full --seconds 600 --steps 20 2>"$OUT/audio600.log" | tee "$OUT/audio600.md"
