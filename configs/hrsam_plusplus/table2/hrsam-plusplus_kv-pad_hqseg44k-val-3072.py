# Table 2: trained weights evaluated on HQSeg-44K val at a 3072² input; summary.json also
# reports NoC@90/95 per original-size bin as the table does.
_base_ = ['../../_base_/models/hrsam_plusplus_vit-b.py', '../../_base_/datasets/hqseg44k_val.py', '../../_base_/default_runtime.py']
test_cfg = dict(type='ClickTestLoop', target_size=3072, max_clicks=20)
test_evaluator = dict(size_bins=(1024, 2048, 3072, 4096))
