# DAVIS-345 evaluation (img/*.jpg, gt/*.png).
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='DavisDataset', data_root='data/DAVIS345/', test_mode=True,
                 pipeline=[dict(type='PackInteractiveInputs')]))
test_evaluator = dict(type='ClickMetric', max_clicks=20)
