# Table 1, settings 1 and 3: fine-tune a click-trained or SAM-distilled HRSAM on HQSeg-44K with
# simulated clicks and NFL, 4 x 1, 40k iterations at 1024². Start from the previous stage:
#   python3 tools/train.py THIS --cfg-options load_from=work_dirs/<stage 1 or 2>/iter_160000.pth
_base_ = [
    '../_base_/models/hrsam_vit-b.py', '../_base_/datasets/hqseg44k.py', '../_base_/schedules/schedule_40k.py',
    '../_base_/default_runtime.py'
]
model = dict(type='ClickSegmentor', gamma=0.6, max_sim_iters=20, loss=dict(type='NormalizedFocalLoss'))
