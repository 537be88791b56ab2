"""HRSAM: a ViT-B image encoder with Flexible Local Attention and Cycle-scan (paper Sec. 3).

Parameter names are those of the released checkpoints (``docs/architecture.md``,
"Checkpoint names"): ``patch_embed.proj``, ``pos_embed``,
``blocks.{i}.{norm1,attn.{qkv,proj,padding},norm2,mlp.{fc1,fc2}}``, ``mamba_blocks.{k}``,
``lateral_convs.{k}.{0,1}``, ``out_conv.{0,2}`` (the parts of the
:class:`~mmhrsam.models.necks.MultiStageFusionNeck` it composes).
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from mmhrsam.ops.attention import Grid
from mmhrsam.registry import MODELS, build_model

from ..layers import AxialRoPE, PatchEmbed, TransformerBlock
from ..necks import MultiStageFusionNeck


#: Checkpoint names of the per-stage Cycle-scan lists (HRSAM; HRSAM++ single- and multi-scale).
STAGE_SCAN_NAMES = ('mamba_blocks', 'ss_mamba_blocks', 'ms_mamba_blocks')


def with_fixed(cfg: dict, what: str, **fixed) -> dict:
    """``cfg`` plus the values the encoder sets; a different user value for one is an error."""
    for key, value in fixed.items():
        if key in cfg and cfg[key] != value:
            raise ValueError(f'{what} sets {key}={cfg[key]!r}, but the encoder sets it to {value!r}; remove it')
    return dict(cfg, **fixed)


def split_grids(x: Tensor, grids: Sequence[Grid]) -> List[Tensor]:
    """(B, sum h*w, C) -> list of (B, h, w, C) maps."""
    sizes = [h * w for h, w in grids]
    return [t.unflatten(1, g) for t, g in zip(x.split(sizes, dim=1), grids)]


@MODELS.register_module()
class HRSAM(BaseModule):
    """HRSAM image encoder (paper Fig. 2, App. D.2): ``MODELS.build(dict(type='HRSAM'))``
    is the paper's ViT-B model (96,369,152 parameters).

    Patch embedding, an MAE-shaped absolute position embedding resized to the token grid,
    2-D axial RoPE, ``depth`` blocks in ``num_stages`` stages whose windows alternate
    non-shift / shifted, a Cycle-scan module before the last block of every stage, and the
    fusion of all stage outputs into SAM's 256-channel embedding
    (:class:`~mmhrsam.models.necks.MultiStageFusionNeck`, :attr:`neck`).

    Any input size works: the image is zero-padded bottom/right to a multiple of
    ``patch_size`` (the embedding covers ``ceil(H/16) x ceil(W/16)`` tokens), and token
    grids that are not a multiple of the window are handled by the attention's index maps.

    Args:
        patch_size (int): patch and stride of the patch embedding.
        in_channels (int): image channels.
        embed_dim (int): token channels C.
        depth (int): number of blocks.
        num_heads (int): attention heads.
        mlp_ratio (float): MLP hidden width / C.
        num_stages (int): stages; ``depth`` must be divisible by it.
        window_size (int): attention window k (odd blocks shift by k // 2). Keep k even
            when comparing variants: with an odd k, Flash Swin's and Plain Swin's shifted
            windows differ (docs/architecture.md, "Flash Swin and Plain Swin").
        attn_cfg (dict): attention variant of every block (Table 3: GlobalAttention,
            FlashSwinAttention, KVPadSwinAttention, PlainSwinAttention, DilatedAttention).
            The encoder sets ``embed_dim``, ``num_heads`` and, for window variants,
            ``shift_size`` (0 / ``window_size // 2`` alternating); giving one of them
            differently is an error. ``window_size`` defaults to the encoder's.
        cycle_scan_cfg (dict, optional): Cycle-scan module before each stage's last block;
            None removes them (Table 3 rows without Cycle-scan).
        pretrain_grid (int): side of the pretrained position-embedding grid (MAE: 14).
        out_channels (int): channels of the fused embedding (SAM's decoder: 256).
        out_indices (Sequence[int], optional): if given, return these stages' outputs, each
            (B, C, H/16, W/16), instead of the fused embedding (mmseg's ViT convention).
        use_rope (bool): rotate q and k with axial RoPE.
        drop_path_rate (float): stochastic depth, linearly increasing over blocks.
        with_cp (bool): gradient checkpointing of every block and Cycle-scan.
        init_cfg (dict, optional): MMEngine initialization config (e.g. ``Pretrained``).
    """

    def __init__(self,
                 patch_size: int = 16,
                 in_channels: int = 3,
                 embed_dim: int = 768,
                 depth: int = 12,
                 num_heads: int = 12,
                 mlp_ratio: float = 4.0,
                 num_stages: int = 4,
                 window_size: int = 16,
                 attn_cfg: dict = dict(type='KVPadSwinAttention'),
                 cycle_scan_cfg: Optional[dict] = dict(type='CycleScan', d_state=32),
                 pretrain_grid: int = 14,
                 out_channels: int = 256,
                 out_indices: Optional[Sequence[int]] = None,
                 use_rope: bool = True,
                 drop_path_rate: float = 0.0,
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if depth % num_stages:
            raise ValueError(f'depth {depth} must be divisible by num_stages {num_stages}')
        self.patch_size, self.embed_dim, self.num_stages = patch_size, embed_dim, num_stages
        self.stage_depth = depth // num_stages
        self.pretrain_grid = pretrain_grid
        self.out_indices = tuple(out_indices) if out_indices is not None else None
        self.with_cp = with_cp

        self.patch_embed = PatchEmbed(patch_size, in_channels, embed_dim)
        # MAE's (1, 1 + 14*14, C) shape; slot 0 (the class token's) is unused.
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + pretrain_grid ** 2, embed_dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.rope = AxialRoPE(embed_dim // num_heads) if use_rope else None

        dpr = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]  # python: works on 'meta'
        self.blocks = nn.ModuleList(
            TransformerBlock(embed_dim, mlp_ratio, self._block_attn_cfg(attn_cfg, i, embed_dim, num_heads, window_size), dpr[i])
            for i in range(depth))
        self.mamba_blocks = self.build_stage_scans(cycle_scan_cfg)
        # The fusion neck's two parts are registered on the encoder under the released
        # checkpoints' names (`lateral_convs`, `out_conv`) rather than under `neck.`, so
        # parameter and state-dict names stay those of the releases; the neck itself is kept
        # outside the module tree (it owns nothing else). See docs/architecture.md,
        # "Checkpoint names".
        neck = MultiStageFusionNeck(self.stage_channels, out_channels, num_stages)
        self.lateral_convs, self.out_conv = neck.lateral_convs, neck.out_conv
        self._neck = (neck, )  # a tuple, so that nn.Module does not register it a second time

    @property
    def neck(self) -> MultiStageFusionNeck:
        """The multi-stage fusion (its parts are this encoder's ``lateral_convs`` and ``out_conv``)."""
        return self._neck[0]

    @property
    def stage_channels(self) -> int:
        """Channels of one stage's feature before its lateral projection."""
        return self.embed_dim

    @staticmethod
    def _block_attn_cfg(attn_cfg: dict, index: int, embed_dim: int, num_heads: int, window_size: int) -> dict:
        cfg = with_fixed(attn_cfg, 'attn_cfg', embed_dim=embed_dim, num_heads=num_heads)
        if MODELS.get(cfg['type']).partition_kind == 'window':
            if 'shift_size' in attn_cfg:
                raise ValueError('attn_cfg sets shift_size, but the encoder alternates it per block '
                                 '(0, window_size // 2, ...); remove it')
            cfg.setdefault('window_size', window_size)
            cfg['shift_size'] = cfg['window_size'] // 2 if index % 2 else 0  # P S P | S P S | ...
        return cfg

    def build_stage_scans(self, cfg: Optional[dict]) -> Optional[nn.ModuleList]:
        """One Cycle-scan module per stage from ``cfg`` (None: no modules)."""
        if cfg is None:
            return None
        return nn.ModuleList(build_model(with_fixed(cfg, 'a Cycle-scan config', embed_dim=self.embed_dim))
                             for _ in range(self.num_stages))

    # ------------------------------------------------------------------ embedding
    def embed(self, img: Tensor) -> Tensor:
        """(B, 3, H, W) normalized image -> (B, h, w, C) tokens with position embedding."""
        x = self.patch_embed(img)  # (B, h, w, C)
        return x + self.resized_pos_embed(x.shape[1:3]).to(x.dtype)

    def resized_pos_embed(self, grid: Grid) -> Tensor:
        """(1, h, w, C): the pretrained grid of position embeddings resized bilinearly."""
        g = self.pretrain_grid
        pos = self.pos_embed[:, 1:].reshape(1, g, g, -1).permute(0, 3, 1, 2)
        if tuple(grid) != (g, g):
            pos = F.interpolate(pos.float(), size=tuple(grid), mode='bilinear', align_corners=False)
        return pos.permute(0, 2, 3, 1)

    def embed_inputs(self, img: Tensor) -> Tuple[Tensor, Tuple[Grid, ...]]:
        """Token sequence (B, L, C) and the grids it is made of."""
        x = self.embed(img)
        return x.flatten(1, 2), (tuple(x.shape[1:3]), )

    # ------------------------------------------------------------------ forward
    def _run(self, fn, *args):
        if self.with_cp and self.training and torch.is_grad_enabled():
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    def run_stage(self, stage: int, x: Tensor, grids: Tuple[Grid, ...], scans: Optional[nn.ModuleList]) -> Tensor:
        """The blocks of ``stage`` on (B, L, C) tokens of ``grids``, with ``scans[stage]``
        (a Cycle-scan, given the grids) before the stage's last block."""
        last = (stage + 1) * self.stage_depth - 1
        for i in range(stage * self.stage_depth, last + 1):
            if scans is not None and i == last:
                x = self._run(scans[stage], x, grids)
            x = self._run(self.blocks[i], x, grids, self.rope)
        return x

    def forward_stages(self, img: Tensor) -> List[Tensor]:
        """The ``num_stages`` stage features, each (B, h, w, stage_channels)."""
        x, grids = self.embed_inputs(img)
        feats = []
        for stage in range(self.num_stages):
            x = self.run_stage(stage, x, grids, self.mamba_blocks)
            feats.append(x.unflatten(1, grids[0]))
        return feats

    def forward(self, img: Tensor) -> Tuple[Tensor, ...]:
        """Args:
            img (Tensor): (B, 3, H, W) normalized image, any H and W.

        Returns:
            tuple[Tensor]: ``(embedding,)`` with embedding (B, out_channels, h, w),
            h = ceil(H / patch_size); or, with ``out_indices``, those stage features,
            each (B, stage_channels, h, w).
        """
        feats = self.forward_stages(img)
        if self.out_indices is not None:
            return tuple(feats[i].permute(0, 3, 1, 2).contiguous() for i in self.out_indices)
        return self.neck([f.permute(0, 3, 1, 2) for f in feats])  # (B, stage_channels, h, w) views

    def get_layer_depth(self, param_name: str, prefix: str = '') -> Tuple[int, int]:
        """Layer depth of a parameter for layer-wise lr decay (mmpretrain's ViT convention).

        0 for the patch and position embeddings, ``i + 1`` for block ``i``, for a stage's
        Cycle-scan the depth of that stage's last block (it runs inside the residual stream
        at that depth), and ``num_layers - 1`` for the output fusion, which reads every stage.

        Args:
            param_name (str): parameter name, starting with ``prefix``.
            prefix (str): the backbone's name in the model followed by a dot.

        Returns:
            tuple[int, int]: ``(layer_depth, num_layers)`` with ``num_layers = depth + 2``.
        """
        num_layers = len(self.blocks) + 2
        if not param_name.startswith(prefix):
            return num_layers - 1, num_layers
        name = param_name[len(prefix):]
        head, _, rest = name.partition('.')
        if name == 'pos_embed' or head == 'patch_embed':
            return 0, num_layers
        if head == 'blocks':
            return int(rest.split('.')[0]) + 1, num_layers
        if head in STAGE_SCAN_NAMES:
            return min((int(rest.split('.')[0]) + 1) * self.stage_depth, num_layers - 1), num_layers
        return num_layers - 1, num_layers

    @property
    def embedding_stride(self) -> int:
        return self.patch_size

    def embedding_size(self, height: int, width: int) -> Grid:
        """Token grid of an (height, width) input."""
        return math.ceil(height / self.patch_size), math.ceil(width / self.patch_size)
