#!/usr/bin/env bash
# The whole GPU check in one go, for a machine with one CUDA GPU and no registry access:
#   1. install the peers from carried wheels (.whl: reformer-pytorch 1.4.4 and the versions it works with;
#      make them with ../shared/tools/peer-wheels.sh .whl) and use this checkout of genoformer;
#   2. the CUDA tests: the fast path's correctness (tests/test_fast_path.py) and a training step that never
#      waits for the GPU (tests/test_pretrain.py; needs .device/whl, wheels of pysam, pyfaidx and biopython);
#   3. benchmarks/train_step.py (with a kernel profile of the fast path at 64k) and attention_gpu.py.
# Each stage has a time limit and the whole run ends within BUDGET_S seconds (default 370); results, logs
# and the profile go to OUT (default benchmarks/logs/gpu-run, git-ignored); copy the JSON files to
# benchmarks/results/ to publish them. HyenaDNA needs .external/hyena-dna.
#   OUT=/tmp/gpu BUDGET_S=600 bash benchmarks/gpu_suite.sh
# A focused run (the fast path against SDPA, profiled at 16k, no attention benchmark):
#   IMPLS="genoformer-fast genoformer-fast-not-reversible sdpa-full-attention" SEQ_LENS="16384 65536 1048576" PROFILE_LEN=16384 ATTENTION=0 \
#     bash benchmarks/gpu_suite.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/logs/gpu-run}
BUDGET_S=${BUDGET_S:-370}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
began=$(date +%s)
left() { echo $(( BUDGET_S - ($(date +%s) - began) )); }

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/peer-site .whl/*.whl
fi
# genoformer's own dependencies that the GPU machine lacks (pysam, pyfaidx, biopython), for the pretraining test
if compgen -G ".device/whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/peer-site .device/whl/*.whl
fi
export PYTHONPATH="$PWD:/tmp/peer-site${PYTHONPATH:+:$PYTHONPATH}"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"

echo "== CUDA tests ($(left) s left)"
timeout 200 python3 -m pytest -q -p no:cacheprovider -p no:logging -m cuda tests/test_fast_path.py tests/test_chunked_lsh.py tests/test_pretrain.py \
  2>&1 | tee "$OUT/pytest.log"

echo "== train_step ($(left) s left)"
step_deadline=$(( $(left) - 110 ))
selection=()
[[ -n "${IMPLS:-}" ]] && selection+=(--impls $IMPLS)
[[ -n "${SEQ_LENS:-}" ]] && selection+=(--seq-lens $SEQ_LENS)
timeout $(( step_deadline + 40 )) python3 benchmarks/train_step.py --deadline-s "$step_deadline" --max-case-s 25 \
  --min-seconds 0.5 "${selection[@]}" --out "$OUT/train_step.json" --profile "$OUT/profile.txt" \
  --profile-len "${PROFILE_LEN:-65536}" 2>&1 | tee "$OUT/train_step.log"
[[ "${ATTENTION:-1}" == 0 ]] && { echo "== done in $(( $(date +%s) - began )) s"; exit 0; }

echo "== attention_gpu ($(left) s left)"
attention_deadline=$(( $(left) - 30 ))
timeout $(( attention_deadline + 25 )) python3 benchmarks/attention_gpu.py --deadline-s "$attention_deadline" \
  --out "$OUT/attention_gpu.json" 2>&1 | tee "$OUT/attention_gpu.log"
echo "== done in $(( $(date +%s) - began )) s"
