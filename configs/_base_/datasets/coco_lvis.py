# COCO 2017 + LVIS v1 click training (paper App. D, setting 1).
# One object per sample, long side resized to 1024, photometric distortion and flip (docs/architecture.md);
# normalization, channel order and padding are the model's data preprocessor.
train_pipeline = [
    dict(type='SampleObject'),
    dict(type='ResizeLongestSide', long_side=1024),
    dict(type='PhotoMetricDistortion'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInteractiveInputs'),
]
coco_root = 'data/coco/'
train_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='ConcatDataset',
        datasets=[
            dict(type='CocoInteractiveDataset', data_root=coco_root,
                 ann_file='annotations/instances_train2017.json', data_prefix=dict(img='train2017/'),
                 pipeline=train_pipeline),
            dict(type='LvisInteractiveDataset', data_root=coco_root, ann_file='annotations/lvis_v1_train.json',
                 data_prefix=dict(img=''), pipeline=train_pipeline),
        ]))
