#!/usr/bin/env bash
# Install mmhrsam with its exact, tested package set (CPU, Python 3.11).
#
#   bash tools/setup_env.sh           the core: the models, the predictor, training, the click
#                                     protocol and the quickstart. Compiles nothing (~2 minutes
#                                     on a fresh 2-core machine, torch from the local wheel).
#   bash tools/setup_env.sh --tests   the core plus what the test suite exercises: full mmcv 2.1.0
#                                     (built once, ~13 minutes on 2 cores, then cached), mmseg,
#                                     mmdet, mmpretrain, the annotation app with Debian's chromium
#                                     for its browser test, ONNX export.
# PYTHON selects the interpreter (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
MODE=core
case "${1:-}" in
  "") ;;
  --tests) MODE=tests ;;
  *) echo "usage: $0 [--tests]" >&2; exit 2 ;;
esac
pip_install() { "$PY" -m pip install -q --disable-pip-version-check "$@"; }

echo "[setup] torch 2.14.1 + the core set"
pip_install torch==2.14.1 torchvision==0.29.1
pip_install -r requirements/core.txt
if [ "$MODE" = core ]; then
  # mmcv.transforms without compiled ops, unless an mmcv (e.g. full mmcv of the test set) is there
  "$PY" -c "import mmcv" 2>/dev/null || pip_install mmcv-lite==2.1.0
else
  echo "[setup] full mmcv 2.1.0 (cached build) and the test set"
  bash tools/install_mmcv.sh
  pip_install -r requirements/ci.txt
  # xformers only for its pure-Python BlockDiagonalMask on CPU (its wheel pins another torch).
  pip_install --no-deps xformers==0.0.35
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    echo "[setup] Debian's chromium + chromium-driver for the annotation app's browser test"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    else
      echo "[setup] not root or no apt-get: the browser test will be skipped" >&2
    fi
  fi
fi
pip_install --no-deps -e .
echo "[setup] done ($MODE)"
