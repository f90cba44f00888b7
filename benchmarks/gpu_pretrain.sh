#!/usr/bin/env bash
# One device call: GPU pretraining on the bundled genome at 64k windows, evaluation vs Markov, CUDA fast-path tests.
# Run on the GPU machine from the repo root with OUT set; results in benchmarks/results/gpu_pretrain_h200/.
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .device/whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee $OUT/gpu.txt
python3 -m genoformer -q tokenize --fasta resources/cdiph/NZ_LN831026.1.fa.gz --k 1 --stride 1 --window 65536 --out /tmp/tok || exit 1
timeout 115 python3 -m genoformer pretrain --data /tmp/tok --config config/pretrain/gpu.yaml --out /tmp/run \
  --set optim.accumulation=1 --set run.steps=500 --set optim.warmup_steps=50 --set run.eval_every=50 \
  --set run.eval_windows=4 --set run.checkpoint_every=100 --set run.log_every=10 > $OUT/pretrain.log 2>&1
echo "pretrain exit $?"; tail -3 $OUT/pretrain.log; cp /tmp/run/metrics.jsonl $OUT/ 2>/dev/null
timeout 40 python3 -m genoformer evaluate --checkpoint /tmp/run --data /tmp/tok --out $OUT/eval.json --max-windows 8 --device cuda 2>&1 | tail -3
cat $OUT/eval.json 2>/dev/null | head -60
timeout 60 python3 -m pytest -q -p no:cacheprovider -m cuda tests/test_fast_path.py 2>&1 | tail -15
