"""The cases' configs and data: the variant options, optimizer wrappers, the step cases' batches."""
from __future__ import annotations

import copy
import os
from typing import List, Sequence

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from mmhrsam.registry import DATASETS
from mmhrsam.structures import InteractiveDataSample

#: The repository root (the configs' paths are relative to it).
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
#: The cases' configs (``--tiny`` replaces the ViT-B ones by the quickstart model).
QUICKSTART = 'configs/quickstart/hrsam-tiny_kv-pad_1xb4_1000it_synthetic-256.py'
CLICK_VITB = 'configs/multi_gpu/hrsam_kv-pad_2xb2_200it_synthetic-1024.py'
DISTILL = 'configs/multi_gpu/hrsam_kv-pad_2xb4_300it_synthetic-sam-distill-1024.py'
CASES = ('quickstart', 'click-vitb', 'distill')
VARIANT_OPTIONS = ('eager', 'compile', 'fused', 'channels_last', 'no_scaler')


def load_config(path: str, tiny: bool, case: str) -> Config:
    """A case's config; with ``tiny`` the quickstart model stands in (SAMDistiller for distill)."""
    if not tiny or case == 'quickstart':
        return Config.fromfile(os.path.join(ROOT, path))
    cfg = Config.fromfile(os.path.join(ROOT, QUICKSTART))
    cfg.model.max_sim_iters = 2
    if case == 'distill':
        cfg.model = dict(type='SAMDistiller', frozen_modules=('head', ),
                         **{k: cfg.model[k] for k in ('backbone', 'head', 'data_preprocessor')})
    return cfg


def input_size(cfg: Config) -> int:
    return int(cfg.model.data_preprocessor.pad_size)


def optim_cfg(cfg: Config, device: str, variant: Sequence[str]) -> dict:
    """The config's optimizer wrapper, bf16 AMP on CUDA (as ``tools/train.py --amp``)."""
    wrapper = copy.deepcopy(cfg.optim_wrapper)
    if device.startswith('cuda'):
        wrapper.type, wrapper.dtype = 'AmpOptimWrapper', 'bfloat16'
    if 'no_scaler' in variant and device.startswith('cuda'):
        wrapper.loss_scale = dict(enabled=False)  # bf16 needs no loss scaling
    if 'fused' in variant:
        if wrapper.optimizer.get('foreach'):
            raise ValueError("variant 'fused' conflicts with the config's optimizer foreach=True")
        wrapper.optimizer.fused = True
    return wrapper


def click_batches(cfg: Config, batch: int, count: int) -> List[dict]:
    """``count`` batches from the config's own training dataset and pipeline."""
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    return [pseudo_collate([dataset[i * batch + j] for j in range(batch)]) for i in range(count)]


def distill_batches(head, size: int, batch: int, count: int) -> List[dict]:
    """Random uint8 images and random teacher embeddings of the shape the student outputs
    (the embedding the SAM ``head`` takes: its width, one cell per ``head.stride`` pixels)."""
    grid = size // head.stride
    channels = head.prompt_encoder.embed_dim
    batches = []
    for _ in range(count):
        samples = []
        for i in range(batch):
            sample = InteractiveDataSample(metainfo=dict(img_id=str(i), img_shape=(size, size)))
            sample.teacher_embedding = torch.randn(channels, grid, grid)
            samples.append(sample)
        images = [torch.randint(0, 256, (3, size, size), dtype=torch.uint8) for _ in range(batch)]
        batches.append(dict(inputs=images, data_samples=samples))
    return batches
