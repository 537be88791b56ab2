# HQSeg-44K training (fine-tuning, paper App. D settings 1 and 3) and validation.
# One object per sample, long side resized to 1024, photometric distortion and flip (docs/architecture.md);
# normalization, channel order and padding are the model's data preprocessor.
train_pipeline = [
    dict(type='SampleObject'),
    dict(type='ResizeLongestSide', long_side=1024),
    dict(type='PhotoMetricDistortion'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInteractiveInputs'),
]
train_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='HQSeg44KDataset', data_root='data/sam-hq/', split='train',
                 pipeline=train_pipeline))
