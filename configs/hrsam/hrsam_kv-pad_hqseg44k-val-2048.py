# Evaluate HRSAM ViT-B on HQSeg-44K val with the click protocol at a 2048² input:
#   python3 tools/test.py configs/hrsam/hrsam_kv-pad_hqseg44k-val-2048.py CHECKPOINT
# The released weights: convert with tools/model_converters/hrsam_release_to_mmhrsam.py and set
# model.data_preprocessor.bgr_input=True (they were trained on BGR input, docs/architecture.md, "Training recipe").
_base_ = ['../_base_/models/hrsam_vit-b.py', '../_base_/datasets/hqseg44k_val.py', '../_base_/default_runtime.py']
test_cfg = dict(type='ClickTestLoop', target_size=2048, max_clicks=20)
