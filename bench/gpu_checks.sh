#!/usr/bin/env bash
# Issue #19's GPU figures as one prepared run for a machine with one NVIDIA GPU (about 8 minutes):
# the CUDA tests, then bench/train.py and bench/step.py, each bounded so that one slow step cannot
# eat the others' time. Results land in ${OUT:-bench/results}; BENCHMARKS.md quotes them with the GPU's
# name. Usage, from the repository root:  OUT=/some/dir bash bench/gpu_checks.sh
set -u
out=${OUT:-bench/results}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 RAY_USAGE_STATS_ENABLED=0
py=${PYTHON:-python}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
# 1. the CUDA tests (GPU decode equals the CPU crops; they skip on CPU machines)
timeout 120 $py -m pytest -q tests/trainer/test_train_decode.py 2>&1 | tail -3 | tee "$out/gpu_tests.txt"
# 2. ViT-B/32 bf16 through the wit train path with GPU decode: samples/s, MFU, data wait, 200+ steps
timeout 240 $py bench/train.py --gpu --model ViT-B/32 --precision bf16 --batch 1024 --steps 220 --compile \
  --paths ray --gpu-decode --corpus-rows 8192 --out "$out/train_gpu.json"
# ... beside open_clip's step in the same call
timeout 90 $py bench/step.py --device cuda --batch 1024 --precision bf16 --out-dir "$out"
# 3. half text weights and half Adam states vs plain fp32 weights (goal >= 0.9x)
timeout 90 $py bench/train.py --gpu --model ViT-B/32 --precision bf16 --batch 1024 --steps 30 --paths synthetic \
  --no-ray --out "$out/train_gpu.json"
timeout 90 $py bench/train.py --gpu --model ViT-B/32 --precision bf16 --batch 1024 --steps 30 --paths synthetic \
  --no-ray --text-dtype bf16 --state-dtype bf16 --out "$out/train_gpu.json"
# 4. ViT-L/14: step time, MFU and peak memory with gradient checkpointing and fp16 states
timeout 120 $py bench/train.py --gpu --model ViT-L/14 --precision bf16 --batch 256 --steps 10 --paths synthetic \
  --no-ray --grad-checkpointing --state-dtype fp16 --out "$out/train_gpu.json"
