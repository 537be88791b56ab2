"""Progressive distillation (SAM-Lightening): intermediate features, then the embedding, then masks.

A schedule of stages, each starting at a training iteration, weights three terms:

* ``feature``: MSE between chosen student and teacher layer outputs, the student's passed
  through a learnt 1 x 1 projection where the widths differ;
* ``embedding``: MSE between the final (B, 256, h, w) embeddings;
* ``mask``: the frozen SAM decoder (``head``, SAM's own weights) decodes the same point
  prompts on both embeddings; binary cross-entropy of the student's mask logits against the
  teacher's mask probabilities.

The iteration is read from MMEngine's message hub (``'iter'``, set by MMEngine's
``RuntimeInfoHook`` before every training iteration, restored on resume), so the stage
follows the run with no extra hook. Teacher outputs come from a frozen encoder built from
config inside the model (online) or from the stored outputs that
``tools/extract_teacher_embeddings.py`` wrote and ``LoadTeacherEmbedding`` loaded.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from segment_anything.utils.amg import build_point_grid
from torch import Tensor, nn

from mmhrsam.registry import MODELS, build_model
from .distiller import SAMDistiller
from .interactive_sam import InteractiveSAM

LOSS_TERMS = ('feature', 'embedding', 'mask')


# ---------------------------------------------------------------------- helpers
def channel_first(feature: Tensor, grid: Tuple[int, int], name: str) -> Tensor:
    """A layer output as (B, C, h, w) on the embedding's ``grid``.

    Accepts (B, h, w, C) (SAM's ViT blocks), (B, C, h, w) and (B, h*w, C) token sequences.

    Raises:
        ValueError: another shape, or a 4-D shape that reads both ways (C == h == w).
    """
    h, w = grid
    last = feature.dim() == 4 and tuple(feature.shape[1:3]) == (h, w)
    first = feature.dim() == 4 and tuple(feature.shape[2:]) == (h, w)
    if last and first:
        raise ValueError(f'output of {name!r} {tuple(feature.shape)} is ambiguous: channels equal the grid side')
    if last:
        return feature.permute(0, 3, 1, 2)
    if first:
        return feature
    if feature.dim() == 3 and feature.shape[1] == h * w:
        return feature.transpose(1, 2).unflatten(2, (h, w))
    raise ValueError(f'output of {name!r} has shape {tuple(feature.shape)}; expected a map on the '
                     f'{h}x{w} embedding grid')


def forward_with_features(encoder: nn.Module, names: Sequence[str], images: Tensor
                          ) -> Tuple[Tensor, Dict[str, Tensor]]:
    """Run ``encoder(images)`` and capture the outputs of its sub-modules ``names``.

    Args:
        encoder (nn.Module): image encoder; its output is the embedding or a tuple ending with it.
        names (Sequence[str]): sub-module paths, e.g. ``'blocks.7'``.
        images (Tensor): (B, 3, H, W).

    Returns:
        tuple: the (B, C, h, w) embedding and ``{name: (B, C_name, h, w)}``.
    """
    captured: Dict[str, Tensor] = {}
    handles = [encoder.get_submodule(name).register_forward_hook(
        lambda module, args, out, _name=name: captured.__setitem__(_name, out)) for name in names]
    try:
        out = encoder(images)
    finally:
        for handle in handles:
            handle.remove()
    embedding = out[-1] if isinstance(out, (tuple, list)) else out
    grid = tuple(embedding.shape[-2:])
    return embedding, {name: channel_first(captured[name], grid, name) for name in names}


def token_channels(encoder: nn.Module) -> int:
    """Width of an encoder's transformer tokens (``embed_dim``, else the patch embedding's)."""
    if isinstance(getattr(encoder, 'embed_dim', None), int):
        return encoder.embed_dim
    proj = getattr(getattr(encoder, 'patch_embed', None), 'proj', None)
    if isinstance(proj, nn.Conv2d):
        return proj.out_channels
    raise ValueError(f'cannot tell the token width of {type(encoder).__name__}: pass the channels explicitly')


def check_stages(stages: Sequence[dict]) -> Tuple[dict, ...]:
    """Stages as dicts ``begin`` + one weight per loss term (0 when absent), checked.

    Raises:
        ValueError: no stage, unknown keys, a first stage not at iteration 0, begins not
            increasing, negative weights or a stage without any positive weight.
    """
    if not stages:
        raise ValueError('at least one distillation stage is needed')
    out = []
    for i, stage in enumerate(stages):
        unknown = sorted(set(stage) - {'begin', *LOSS_TERMS})
        if unknown or 'begin' not in stage:
            raise ValueError(f'stage {i} {dict(stage)}: needs `begin` and weights of {LOSS_TERMS}; unknown {unknown}')
        weights = {term: float(stage.get(term, 0.0)) for term in LOSS_TERMS}
        if min(weights.values()) < 0 or max(weights.values()) == 0:
            raise ValueError(f'stage {i} {dict(stage)}: weights must be >= 0 with at least one > 0')
        out.append(dict(begin=int(stage['begin']), **weights))
    begins = [s['begin'] for s in out]
    if begins[0] != 0 or any(b <= a for a, b in zip(begins, begins[1:])):
        raise ValueError(f'stage begins must start at 0 and increase, got {begins}')
    return tuple(out)


def current_iteration() -> int:
    """The training iteration from MMEngine's message hub.

    Raises:
        RuntimeError: outside a runner, when nothing set it.
    """
    iteration = MessageHub.get_current_instance().get_info('iter')
    if iteration is None:
        raise RuntimeError("no training iteration in MMEngine's message hub: train under an MMEngine Runner "
                           "(its RuntimeInfoHook sets it), or call MessageHub.get_current_instance()"
                           ".update_info('iter', i) first")
    return int(iteration)


# ---------------------------------------------------------------------- model
@MODELS.register_module()
class ProgressiveDistiller(InteractiveSAM):
    """SAM-Lightening's progressive distillation of a student encoder from a SAM teacher.

    Args:
        backbone (dict): student image encoder.
        head (dict): SAM head with SAM's own weights; frozen (it is the teacher's decoder).
        stages (Sequence[dict]): ``dict(begin=ITER, feature=w, embedding=w, mask=w)`` each;
            stage k runs from its ``begin`` to the next stage's. See :func:`check_stages`.
        feature_pairs (Sequence[tuple[str, str]]): (student module, teacher module) whose
            outputs the ``feature`` term matches, e.g. ``('blocks.5', 'blocks.15')``.
        teacher (dict, optional): teacher encoder config, run online and frozen (give it
            weights through its ``init_cfg``). None: use the stored teacher outputs of each
            sample (``teacher_embedding``, ``teacher_features``).
        teacher_channels (int, optional): width of the teacher features; required for stored
            features, inferred from an online teacher (a different given value is an error).
        student_channels (int, optional): width of the student features; inferred by default.
        mask_points_per_side (int): the mask term prompts each image with one positive click
            at every point of this square grid over the image (segment_anything's
            ``build_point_grid``), one mask per click.
        data_preprocessor (dict | nn.Module, optional): see :class:`InteractiveSAM`.
        frozen_modules (Sequence[str]): see :class:`InteractiveSAM`; must include ``'head'``.
        init_cfg (dict, optional): MMEngine initialization config.
    """

    def __init__(self,
                 backbone: dict,
                 stages: Sequence[dict],
                 head: dict = dict(type='SAMHead'),
                 feature_pairs: Sequence[Sequence[str]] = (),
                 teacher: Optional[dict] = None,
                 teacher_channels: Optional[int] = None,
                 student_channels: Optional[int] = None,
                 mask_points_per_side: int = 4,
                 data_preprocessor: Union[dict, nn.Module, None] = None,
                 frozen_modules: Sequence[str] = ('head', ),
                 init_cfg: Optional[dict] = None):
        if 'head' not in frozen_modules:
            raise ValueError("the head is the teacher's decoder: keep 'head' in frozen_modules")
        super().__init__(backbone, head, data_preprocessor, frozen_modules, init_cfg)
        self.stages = check_stages(stages)
        self.feature_pairs = tuple((str(s), str(t)) for s, t in feature_pairs)
        self.mask_points_per_side = int(mask_points_per_side)
        if any(s['feature'] > 0 for s in self.stages) and not self.feature_pairs:
            raise ValueError('a stage weights the feature term but feature_pairs is empty')
        self.teacher = None
        if teacher is not None:
            self.teacher = build_model(teacher)
            for param in self.teacher.parameters():
                param.requires_grad_(False)
            self.frozen_modules += ('teacher', )
            teacher_channels = self._online_width(teacher_channels)
        for student_name, teacher_name in self.feature_pairs:
            self.backbone.get_submodule(student_name)  # AttributeError naming a wrong path
            if self.teacher is not None:
                self.teacher.get_submodule(teacher_name)
        self.feature_projs = self._projections(student_channels, teacher_channels)

    def _online_width(self, given: Optional[int]) -> Optional[int]:
        if not self.feature_pairs:
            return given
        width = token_channels(self.teacher)
        if given is not None and given != width:
            raise ValueError(f'teacher_channels={given} but the teacher\'s tokens have {width} channels')
        return width

    def _projections(self, student: Optional[int], teacher: Optional[int]) -> nn.ModuleList:
        """One 1 x 1 projection per feature pair where the widths differ, else identity."""
        if not self.feature_pairs:
            return nn.ModuleList()
        if teacher is None:
            raise ValueError('stored teacher features need teacher_channels (e.g. 1280 for SAM ViT-H)')
        student = token_channels(self.backbone) if student is None else student
        return nn.ModuleList(nn.Identity() if student == teacher else nn.Conv2d(student, teacher, 1)
                             for _ in self.feature_pairs)

    # ------------------------------------------------------------------ schedule
    def stage_index(self, iteration: int) -> int:
        """Index of the stage running at ``iteration``."""
        return max(i for i, s in enumerate(self.stages) if s['begin'] <= iteration)

    # ------------------------------------------------------------------ teacher
    def teacher_outputs(self, inputs: Tensor, data_samples: list, with_features: bool
                        ) -> Tuple[Tensor, Dict[str, Tensor]]:
        """Teacher embedding (B, 256, h, w) and features {teacher module: (B, C_t, h, w)}, float32."""
        names = [t for _, t in self.feature_pairs] if with_features else []
        if self.teacher is not None:
            with torch.no_grad():
                embedding, feats = forward_with_features(self.teacher, names, inputs)
            return embedding.float(), {k: v.float() for k, v in feats.items()}
        embedding = SAMDistiller.teacher_targets(data_samples, inputs.device)
        feats = {}
        for name in names:
            missing = [s.metainfo.get('img_id', '?') for s in data_samples
                       if name not in (s.get('teacher_features') or {})]
            if missing:
                raise KeyError(f'no stored teacher feature {name!r} for images {missing[:5]}: extract it with '
                               f'tools/extract_teacher_embeddings.py --features {name} and load it with '
                               f"LoadTeacherEmbedding(features=[{name!r}])")
            feats[name] = torch.stack([torch.as_tensor(s.teacher_features[name]) for s in data_samples]
                                      ).to(inputs.device).float()
        return embedding, feats

    # ------------------------------------------------------------------ losses
    def feature_loss(self, student: Dict[str, Tensor], teacher: Dict[str, Tensor]) -> Tensor:
        """Mean over pairs of the MSE between projected student and teacher features."""
        terms = []
        for proj, (s_name, t_name) in zip(self.feature_projs, self.feature_pairs):
            s_feat, t_feat = proj(student[s_name]), teacher[t_name]
            if s_feat.shape != t_feat.shape:
                raise ValueError(f'{s_name} -> {tuple(s_feat.shape)} and teacher {t_name} {tuple(t_feat.shape)} '
                                 'differ: train at the teacher\'s input size')
            terms.append(F.mse_loss(s_feat.float(), t_feat))
        return torch.stack(terms).mean()

    def mask_prompts(self, data_samples: list, input_size: Tuple[int, int], device) -> List[Tensor]:
        """Per sample, (P, 1, 2) click (x, y) pixel indices on a grid over its valid image area."""
        grid = torch.as_tensor(build_point_grid(self.mask_points_per_side), dtype=torch.float32)  # (P, 2) in (0, 1)
        prompts = []
        for sample in data_samples:
            h, w = sample.metainfo.get('img_shape', input_size)
            prompts.append(torch.floor(grid * grid.new_tensor([w, h])).view(-1, 1, 2).to(device))
        return prompts

    def mask_loss(self, student: Tensor, teacher: Tensor, data_samples: list, input_size: Tuple[int, int]
                  ) -> Tensor:
        """BCE of the student's masks against the teacher's mask probabilities, same frozen decoder."""
        terms = []
        for i, points in enumerate(self.mask_prompts(data_samples, input_size, student.device)):
            labels = torch.ones(points.shape[:2], dtype=torch.long, device=points.device)
            s_logits, _ = self.head(student[i:i + 1], points, labels)  # (P, 1, 4h, 4w)
            with torch.no_grad():
                t_logits, _ = self.head(teacher[i:i + 1].to(student.dtype), points, labels)
            terms.append(F.binary_cross_entropy_with_logits(s_logits.float(), t_logits.float().sigmoid()))
        return torch.stack(terms).mean()

    def loss(self, inputs: Tensor, data_samples: list) -> Dict[str, Tensor]:
        """The weighted terms of the current stage (``loss_*``) and the stage index (logged)."""
        index = self.stage_index(current_iteration())
        weights = self.stages[index]
        with_features = weights['feature'] > 0
        student, s_feats = forward_with_features(self.backbone, [s for s, _ in self.feature_pairs]
                                                 if with_features else [], inputs)
        teacher, t_feats = self.teacher_outputs(inputs, data_samples, with_features)
        if student.shape != teacher.shape:
            raise ValueError(f'student embedding {tuple(student.shape)} and teacher embedding '
                             f'{tuple(teacher.shape)} differ: train at the teacher\'s input size')
        losses = {}
        if with_features:
            losses['loss_feature'] = weights['feature'] * self.feature_loss(s_feats, t_feats)
        if weights['embedding'] > 0:
            losses['loss_embedding'] = weights['embedding'] * F.mse_loss(student.float(), teacher)
        if weights['mask'] > 0:
            losses['loss_mask'] = weights['mask'] * self.mask_loss(student, teacher, data_samples,
                                                                   tuple(inputs.shape[-2:]))
        losses['stage'] = torch.tensor(float(index), device=inputs.device)
        return losses
