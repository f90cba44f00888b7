#!/usr/bin/env bash
# Runs inside the freshly created conda env: install this repository's genoformer (dependencies come from
# genoformer.yaml). The workflow sets GENOFORMER_ROOT to the repository holding workflow/.
set -euo pipefail
pip install --no-deps -e "${GENOFORMER_ROOT:?set by workflow/rules/common.smk}"
