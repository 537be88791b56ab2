# SAM distillation on COCO 2017 + LVIS v1 images (paper App. D, setting 2): no labels, the
# targets are SAM ViT-H embeddings stored by tools/extract_teacher_embeddings.py, e.g.
#   python3 tools/extract_teacher_embeddings.py configs/hrsam/hrsam_kv-pad_4xb1_160k_sam-distill-1024.py \
#       --teacher sam_vit_h --checkpoint pretrain/sam_vit_h_4b8939.pth --out data/sam_vit_h_embeddings --device cuda
# No photometric or geometric augmentation: the student must see the teacher's exact input.
# LoadTeacherEmbedding comes first: it checks the image as loaded against the manifest.
embedding_dir = 'data/sam_vit_h_embeddings/'
distill_pipeline = [
    # The manifest must record the student's preprocessing (docs/architecture.md), else it is an error.
    dict(type='LoadTeacherEmbedding', embedding_dir=embedding_dir,
         preprocessing=dict(target_size=1024, mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375),
                            bgr_input=False)),
    dict(type='SampleObject'),
    dict(type='ResizeLongestSide', long_side=1024),
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
                 pipeline=distill_pipeline),
            dict(type='LvisInteractiveDataset', data_root=coco_root, ann_file='annotations/lvis_v1_train.json',
                 data_prefix=dict(img=''), pipeline=distill_pipeline),
        ]))
