#!/usr/bin/env bash
# Train the quickstart model on the built-in synthetic data, then evaluate it with the click protocol.
# Results: work_dirs/quickstart/<timestamp>/{summary.json,per_instance.csv,miou_vs_clicks.png,vis/*.png}
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=configs/quickstart/hrsam-tiny_kv-pad_1xb4_1300it_synthetic-256.py
WORK_DIR=${WORK_DIR:-work_dirs/quickstart}
python3 tools/train.py "$CONFIG" --work-dir "$WORK_DIR" "$@"
python3 tools/test.py "$CONFIG" "$(cat "$WORK_DIR/last_checkpoint")" --work-dir "$WORK_DIR"
