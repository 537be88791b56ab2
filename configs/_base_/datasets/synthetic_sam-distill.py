# SAM distillation on the built-in synthetic scenes (no download): the targets are teacher
# embeddings stored by tools/extract_teacher_embeddings.py for exactly these images, e.g.
#   python3 tools/extract_teacher_embeddings.py CONFIG --teacher configs/baselines/sam_vit-h.py \
#       --out data/synthetic_sam_vit-h_embeddings --device cuda
# (without --checkpoint the teacher has random weights: enough to exercise the machinery).
# No augmentation: the student must see the teacher's exact input, so runs on any number of
# GPUs see the same global batches (InfiniteSampler splits one permutation across ranks).
embedding_dir = 'data/synthetic_sam_vit-h_embeddings/'
distill_pipeline = [
    dict(type='LoadTeacherEmbedding', embedding_dir=embedding_dir,
         preprocessing=dict(target_size=1024, mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375),
                            bgr_input=False)),
    dict(type='SampleObject'),
    dict(type='ResizeLongestSide', long_side=1024),
    dict(type='PackInteractiveInputs'),
]
train_dataloader = dict(
    batch_size=1,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(type='SyntheticHighResDataset', num_images=512, image_size=(1024, 2048), seed=0,
                 pipeline=distill_pipeline))
