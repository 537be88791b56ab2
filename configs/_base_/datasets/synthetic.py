# The built-in synthetic high-resolution scenes (no download): 1024²–4096² images with thin
# structures, holes and fine boundaries; a disjoint seed for the evaluation split.
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
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='SyntheticHighResDataset', num_images=10000, image_size=(1024, 4096), seed=0,
                 pipeline=train_pipeline))
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='SyntheticHighResDataset', num_images=100, image_size=(1024, 4096), seed=10**6,
                 test_mode=True, pipeline=[dict(type='PackInteractiveInputs')]))
test_evaluator = dict(type='ClickMetric', max_clicks=20)
