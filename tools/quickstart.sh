#!/usr/bin/env bash
# Train the quickstart model on the built-in synthetic data, then evaluate it with the click protocol.
# Progress: the training log prints loss and ETA every 50 iterations; the evaluation shows a bar.
# Results: work_dirs/quickstart/<timestamp>/{summary.json,per_instance.csv,miou_vs_clicks.png,vis/*.png}
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
CONFIG=configs/quickstart/hrsam-tiny_kv-pad_1xb4_1000it_synthetic-256.py
WORK_DIR=${WORK_DIR:-work_dirs/quickstart}
START=$(date +%s)
echo "[quickstart] training a tiny HRSAM on synthetic scenes (1000 iterations; ETA in the log lines)"
LOADER=()
if [ "$(nproc)" -le 2 ]; then
  # On 2 cores a data-loading worker competes with the two compute threads: load in the main process.
  LOADER=(--cfg-options train_dataloader.num_workers=0 train_dataloader.persistent_workers=False)
  # One compute thread: with two, OpenMP's barriers spin-wait for a thread that another busy
  # process has descheduled (quickstart training 0.44 s/it idle, 1.79 s/it beside one busy
  # process); with one, 0.49 and 0.54 s/it (docs/benchmarks.md, "CPU threads"). Set
  # OMP_NUM_THREADS yourself to choose otherwise.
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
fi
"$PY" tools/train.py "$CONFIG" --work-dir "$WORK_DIR" "${LOADER[@]}" "$@"
CKPT=$(cat "$WORK_DIR/last_checkpoint")
echo "[quickstart] evaluating $CKPT with 20 simulated clicks per object"
"$PY" tools/test.py "$CONFIG" "$CKPT" --work-dir "$WORK_DIR"
RUN_DIR=$(ls -td "$WORK_DIR"/*/ | head -n 1)
RUN_DIR=${RUN_DIR%/}
cat <<MSG
[quickstart] done in $(( $(date +%s) - START )) s. Results:
  metrics (NoC, mIoU per click, 20-SPC)  $RUN_DIR/summary.json
  per-object clicks to 85/90/95 %        $RUN_DIR/per_instance.csv
  mIoU after each click (plot)           $RUN_DIR/miou_vs_clicks.png
  drawings of clicks and masks           $RUN_DIR/vis/
  trained checkpoint                     $CKPT
Click on your own images with it: python3 tools/annotate.py   (pip install -e .[app])
MSG
