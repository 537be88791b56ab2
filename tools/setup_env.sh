#!/usr/bin/env bash
# Install mmhrsam with the exact package set its tests run on (CPU, Python 3.11).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -m pip install -q torch==2.14.1 torchvision==0.29.1
"$PY" -m pip install -q -r requirements/ci.txt
# xformers only for its pure-Python BlockDiagonalMask on CPU (its wheel pins another torch).
"$PY" -m pip install -q --no-deps xformers==0.0.35
bash tools/install_mmcv.sh
"$PY" -m pip install -q mmsegmentation==1.2.2
"$PY" -m pip install -q --no-deps -e .
