"""Layer-wise learning-rate decay and the project's no-weight-decay rules.

The layer of a parameter comes from the backbone: ``backbone.get_layer_depth(name)``
returns ``(layer_depth, num_layers)`` (mmpretrain's ViT convention). The encoders of this
project (:class:`~mmhrsam.models.backbones.HRSAM`, ``HRSAMPlusPlus``, ``SAMViT``) number
their parameters so (``L`` = number of blocks, ``num_layers = L + 2``):

=========================================================  ==========================
parameter                                                  layer depth
=========================================================  ==========================
``backbone.patch_embed.*``, ``backbone.pos_embed``         0
``backbone.blocks.{i}.*`` (pad tokens included)            ``i + 1``
a stage's Cycle-scan (``backbone.mamba_blocks.{k}``,       depth of stage k's last block,
HRSAM++ ``ss_mamba_blocks.{k}`` and ``ms_mamba_blocks.{k}``)  ``(k + 1) * stage_depth``
anything else in the backbone (``lateral_convs``,          ``L + 1``
``out_conv``, HRSAM++ ``multi_scale_fusion``, SAM's
``neck``)
everything outside the backbone (prompt encoder, decoder)  ``L + 1``
=========================================================  ==========================

The learning rate of layer ``j`` is ``lr * layer_decay_rate ** (L + 1 - j)``. With
``paramwise_cfg=dict(num_layers=L')`` the top layer is ``L' + 1`` instead: deeper blocks are
clamped to it.

No weight decay (``docs/architecture.md``, "Training rules") on: position embeddings
(``pos_embed``, SAM's ``rel_pos_h``/``rel_pos_w``), attention pad tokens (``padding``), the
SSM's ``As_log`` (``A_log``), ``Ds`` (``D``) and ``gamma``, weights and biases of
normalization layers, any bias, every parameter with at most one dimension, and any parameter
carrying ``_no_weight_decay = True``. Frozen parameters (``requires_grad=False``) are left out
of the optimizer.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS, OPTIMIZERS
from torch import nn

from mmhrsam.registry import OPTIM_WRAPPER_CONSTRUCTORS

#: Leaf names of parameters that never get weight decay, whatever their shape.
NO_DECAY_NAMES = frozenset({'pos_embed', 'rel_pos_h', 'rel_pos_w', 'padding', 'As_log', 'A_log', 'Ds', 'D',
                            'gamma'})

def is_norm(module: nn.Module) -> bool:
    """Normalization layers of torch, mmcv and segment_anything (``LayerNorm2d``), by class name."""
    return 'norm' in type(module).__name__.lower()


def no_weight_decay(name: str, param: nn.Parameter, owner: nn.Module) -> bool:
    """Whether ``param`` (called ``name``, owned directly by ``owner``) is exempt from weight decay."""
    leaf = name.rsplit('.', 1)[-1]
    return (param.ndim <= 1 or leaf in NO_DECAY_NAMES or leaf.endswith('bias') or is_norm(owner)
            or bool(getattr(param, '_no_weight_decay', False)))


@dataclass(frozen=True)
class BackboneLayout:
    """The backbone's layer numbering as the constructor uses it.

    Attributes:
        backbone (nn.Module): the module answering ``get_layer_depth``.
        prefix (str): the backbone's name in the model followed by a dot (``''`` when the
            model is the backbone).
        num_layers (int): L, the top layer being ``L + 1``.
    """

    backbone: nn.Module
    prefix: str
    num_layers: int

    def layer_id(self, name: str) -> int:
        """Layer id of the parameter ``name`` (a name in the whole model)."""
        top = self.num_layers + 1
        if not name.startswith(self.prefix):
            return top
        depth, backbone_layers = self.backbone.get_layer_depth(name[len(self.prefix):])
        return top if depth >= backbone_layers - 1 else min(depth, top)


def find_backbone_layout(model: nn.Module, num_layers: Optional[int]) -> BackboneLayout:
    """Locate the backbone (``model.backbone``, or the model itself) and read its layout.

    Args:
        model (nn.Module): the unwrapped model.
        num_layers (int, optional): overrides L (by default the backbone's ``num_layers - 2``).
    """
    backbone, prefix = (model.backbone, 'backbone.') if hasattr(model, 'backbone') else (model, '')
    if not callable(getattr(backbone, 'get_layer_depth', None)):
        raise ValueError(f'{type(backbone).__name__} has no get_layer_depth(param_name) -> (depth, num_layers); '
                         'layer-wise lr decay needs it (see mmhrsam.models.backbones.HRSAM)')
    if num_layers is None:
        num_layers = backbone.get_layer_depth('')[1] - 2
    return BackboneLayout(backbone, prefix, int(num_layers))


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Optimizer wrapper with layer-wise lr decay and the project's no-decay rules.

    See the module docstring for the layer ids and the no-decay list. Config::

        optim_wrapper = dict(
            type='AmpOptimWrapper',
            optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05, betas=(0.9, 0.999)),
            constructor='LayerDecayOptimWrapperConstructor',
            paramwise_cfg=dict(layer_decay_rate=0.9))

    One parameter group per (layer id, decay or not); each group carries ``lr`` and
    ``weight_decay`` already scaled plus two informative keys, ``layer_id`` and
    ``lr_scale``. MMEngine's parameter schedulers scale each group's own initial lr, so the
    layer ratios hold through warm-up and decay. The groups are logged at INFO.

    Args:
        optim_wrapper_cfg (dict): ``type`` of the wrapper, ``optimizer`` config and the
            wrapper's other arguments.
        paramwise_cfg (dict, optional): ``layer_decay_rate`` (float, default 1.0: no layer
            decay, only the no-decay rules; the distillation recipe uses 0.9) and
            ``num_layers`` (int, default: number of backbone blocks). Other keys (MMEngine's
            ``custom_keys``, ``bias_decay_mult``, ...) are rejected rather than ignored.
    """

    allowed_options = ('layer_decay_rate', 'num_layers')

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None):
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        unknown = sorted(set(self.paramwise_cfg) - set(self.allowed_options))
        if unknown:
            raise ValueError(f'LayerDecayOptimWrapperConstructor does not support paramwise_cfg keys '
                             f'{unknown}; allowed: {list(self.allowed_options)}')
        self.layer_decay_rate = float(self.paramwise_cfg.get('layer_decay_rate', 1.0))
        if not 0 < self.layer_decay_rate <= 1:
            raise ValueError(f'layer_decay_rate must lie in (0, 1], got {self.layer_decay_rate}')
        self.num_layers = self.paramwise_cfg.get('num_layers')
        if self.base_lr is None:
            raise ValueError('the optimizer config needs an explicit lr for layer-wise scaling')

    def param_groups(self, model: nn.Module) -> List[dict]:
        """The optimizer's parameter groups for ``model`` (unwrapped), in layer order."""
        layout = find_backbone_layout(model, self.num_layers)
        base_wd = float(self.base_wd or 0.0)
        groups: Dict[Tuple[int, bool], dict] = {}
        for name, param in model.named_parameters():  # shared parameters are listed once
            if not param.requires_grad:
                continue
            layer_id = layout.layer_id(name)
            owner = model.get_submodule(name.rpartition('.')[0])
            decay = base_wd > 0 and not no_weight_decay(name, param, owner)
            scale = self.layer_decay_rate ** (layout.num_layers + 1 - layer_id)
            group = groups.setdefault((layer_id, decay), dict(
                params=[], names=[], lr=self.base_lr * scale, layer_id=layer_id, lr_scale=scale))
            if self.base_wd is not None:  # optimizers without weight decay get no such key
                group['weight_decay'] = base_wd if decay else 0.0
            group['params'].append(param)
            group['names'].append(name)
        if not groups:
            raise ValueError(f'{type(model).__name__} has no trainable parameter')
        ordered = [groups[key] for key in sorted(groups)]
        self._log_groups(ordered, layout)
        for group in ordered:
            del group['names']  # torch optimizers keep unknown keys in their state dict: keep it lean
        return ordered

    def _log_groups(self, groups: List[dict], layout: BackboneLayout) -> None:
        lines = [f'layer-wise lr decay {self.layer_decay_rate} over {layout.num_layers} layers '
                 f'of {type(layout.backbone).__name__}, base lr {self.base_lr:g}:',
                 f'{"layer":>5} {"lr_scale":>9} {"wd":>7} {"#tensors":>8} {"#params":>12}  first names']
        for g in groups:
            counts = OrderedDict.fromkeys(re.sub(r'\.\d+\.', '.*.', n) for n in g['names'])
            lines.append(f'{g["layer_id"]:>5} {g["lr_scale"]:>9.4f} {g.get("weight_decay", 0.0):>7g} '
                         f'{len(g["params"]):>8} {sum(p.numel() for p in g["params"]):>12,}  '
                         + ', '.join(list(counts)[:3]) + (' ...' if len(counts) > 3 else ''))
        print_log('\n'.join(lines), logger='current')

    def __call__(self, model: nn.Module) -> OptimWrapper:
        """Build the optimizer wrapper of ``model`` (a DDP-style ``.module`` is unwrapped)."""
        if hasattr(model, 'module'):
            model = model.module
        optimizer_cfg = dict(self.optimizer_cfg, params=self.param_groups(model))
        optimizer = OPTIMIZERS.build(optimizer_cfg)
        wrapper_cfg = dict(self.optim_wrapper_cfg)
        wrapper_cfg.setdefault('type', 'OptimWrapper')
        return OPTIM_WRAPPERS.build(wrapper_cfg, default_args=dict(optimizer=optimizer))
