# HQSeg-44K validation (docs/evaluation_protocol.md): DIS5K/DIS-VD, COIFT, HRSOD, ThinObject5K test; 1,537 images.
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='HQSeg44KDataset', data_root='data/sam-hq/', split='val', test_mode=True,
                 pipeline=[dict(type='PackInteractiveInputs')]))
test_evaluator = dict(type='ClickMetric', max_clicks=20)
