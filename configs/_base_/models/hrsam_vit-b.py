# HRSAM ViT-B (paper App. D.2): Flash Swin attention with KV-only padding, windows 16
# alternating non-shift / shifted, a Cycle-scan before each of the 4 stages' last block,
# and segment_anything's prompt encoder + mask decoder.
model = dict(
    type='InteractiveSAM',
    backbone=dict(
        type='HRSAM',
        embed_dim=768,
        depth=12,
        num_heads=12,
        num_stages=4,
        window_size=16,
        attn_cfg=dict(type='KVPadSwinAttention', backend='auto'),
        cycle_scan_cfg=dict(type='CycleScan', d_state=32, scan_backend='auto'),
        drop_path_rate=0.0),
    # Every HRSAM / HRSAM++ model (the released ones and those trained by these configs) is
    # trained on 1024² inputs, i.e. a 64x64 embedding grid, where both dense_pe modes agree;
    # 'resize' runs the other sizes (2048²-4096²) the way the released models were run.
    head=dict(type='SAMHead', dense_pe='resize'),
    # RGB statistics, zero padding after normalization to the 1024² square (docs/architecture.md).
    # The released weights were trained on BGR input: bgr_input=True when fine-tuning them.
    data_preprocessor=dict(type='InteractiveDataPreprocessor', mean=(123.675, 116.28, 103.53),
                           std=(58.395, 57.12, 57.375), bgr_input=False, pad_size=1024))
# Inference (mmhrsam.apis.HRSAMPredictor.from_config). The released weights were trained
# on BGR-ordered input with RGB statistics: set bgr_input=True when loading them.
predictor = dict(target_size=2048, bgr_input=False)
