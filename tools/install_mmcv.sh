#!/usr/bin/env bash
# Install full mmcv 2.1.0 (with its CPU ops), which mmsegmentation's models need.
#
# Why a build recipe: PyPI has no mmcv 2.1.0 wheel for this torch, mmseg 1.2.2 refuses
# mmcv >= 2.2, and mmcv 2.1.0's setup.py hard-codes -std=c++14/17 while torch >= 2.14's
# headers need C++20. We build the PyPI sdist with the standard flag raised to C++20
# (about 10 minutes on 2 cores) and keep the wheel in a cache, so it is built once.
# Nothing of mmcv is committed to this repository.
set -euo pipefail
PY=${PYTHON:-python3}
if "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '2.1.0'" 2>/dev/null; then
  echo "mmcv 2.1.0 with ops is already installed"; exit 0
fi
CACHE=${MMHRSAM_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmhrsam/wheels}
TORCH=$("$PY" -c "import torch; print(torch.__version__.split('+')[0])")
mkdir -p "$CACHE/torch-$TORCH"
WHEEL=$(ls "$CACHE/torch-$TORCH"/mmcv-2.1.0-*.whl 2>/dev/null | head -n 1 || true)
if [ -z "$WHEEL" ]; then
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
  "$PY" -m pip install -q 'setuptools<81' ninja wheel
  "$PY" -m pip download -q --no-deps --no-binary :all: mmcv==2.1.0 -d "$WORK"
  tar -xzf "$WORK"/mmcv-2.1.0.tar.gz -C "$WORK"
  sed -i 's/-std=c++14/-std=c++20/g; s/-std=c++17/-std=c++20/g' "$WORK/mmcv-2.1.0/setup.py"
  echo "building mmcv 2.1.0 with CPU ops (one time, about 10 minutes on 2 cores)..."
  (cd "$WORK/mmcv-2.1.0" && MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} \
    "$PY" -m pip wheel -q --no-build-isolation --no-deps -w "$CACHE/torch-$TORCH" .)
  WHEEL=$(ls "$CACHE/torch-$TORCH"/mmcv-2.1.0-*.whl | head -n 1)
fi
# mmcv-lite (the core set's) provides the same package: remove it first so no file is shared.
if "$PY" -m pip show -q mmcv-lite >/dev/null 2>&1; then "$PY" -m pip uninstall -q -y mmcv-lite; fi
"$PY" -m pip install -q "$WHEEL"
"$PY" -c "import mmcv.ops; print('mmcv', __import__('mmcv').__version__, 'with ops installed')"
