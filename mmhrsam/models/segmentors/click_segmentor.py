"""Click-simulation training (docs/architecture.md, paper App. D): iterative clicks, then one gradient step."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from mmhrsam.registry import MODELS, build_model
from mmhrsam.structures.click_sampling import sample_click_torch
from .interactive_sam import InteractiveSAM


@MODELS.register_module()
class ClickSegmentor(InteractiveSAM):
    """Trains an :class:`InteractiveSAM` with simulated clicks.

    Per sample, ``k`` is drawn with P(k) ∝ ``gamma`` ** k, k = 0..``max_sim_iters``. The
    encoder runs once (with gradient); the first click is the exact evaluation click on an
    empty prediction; then, without gradient, the decoder runs k times on the detached
    embedding, each time adding a click sampled from the current errors (pixels deeper than
    max / 1.7 of the error region's distance transform, see
    :func:`mmhrsam.evaluation.sample_click_torch`) and feeding its logits back as the mask
    prompt. The last decoder pass, with all k + 1 clicks and the k-th logits, gets the
    gradient; the loss compares its logits, upsampled to the input frame, with the mask.
    Pixels marked 255 (padding, unknown) are never clicked and carry no loss.

    Args:
        backbone (dict): image encoder config.
        head (dict): SAM head config.
        loss (dict): loss on (B, 1, H, W) logits and targets in {0, 1, 255}.
        gamma (float): decay of P(k): 0.6 for COCO, 0.9 for LVIS (docs/architecture.md).
        max_sim_iters (int): largest k (20 in the paper).
        click_threshold (str): ``'exact'`` (DT > max / 1.7 exactly) or ``'original'`` (the
            original implementation's float32 ``DT > max / (1.7 + eps)``, which also keeps
            pixels at exactly max / 1.7), see :func:`mmhrsam.evaluation.sample_click`.
        data_preprocessor (dict | nn.Module, optional): see :class:`InteractiveSAM`.
        frozen_modules (Sequence[str]): see :class:`InteractiveSAM`.
        init_cfg (dict, optional): MMEngine initialization config.
    """

    def __init__(self,
                 backbone: dict,
                 head: dict = dict(type='SAMHead'),
                 loss: dict = dict(type='NormalizedFocalLoss'),
                 gamma: float = 0.6,
                 max_sim_iters: int = 20,
                 click_threshold: str = 'exact',
                 data_preprocessor: Union[dict, nn.Module, None] = None,
                 frozen_modules: Sequence[str] = (),
                 init_cfg: Optional[dict] = None):
        super().__init__(backbone, head, data_preprocessor, frozen_modules, init_cfg)
        if not 0 < gamma <= 1:
            raise ValueError(f'gamma must be in (0, 1], got {gamma}')
        if max_sim_iters < 0:
            raise ValueError(f'max_sim_iters must be >= 0, got {max_sim_iters}')
        self.loss_fn = build_model(loss)
        if click_threshold not in ('exact', 'original'):
            raise ValueError(f"click_threshold must be 'exact' or 'original', got {click_threshold!r}")
        self.gamma, self.max_sim_iters = float(gamma), int(max_sim_iters)
        self.click_threshold = click_threshold

    def draw_num_iters(self, batch: int) -> Tensor:
        """(B,) int64 k ~ P(k) ∝ gamma^k, k = 0..max_sim_iters, on the CPU (torch's global RNG).

        On the CPU so that the number of simulation steps, ``max k``, is known to the host
        without waiting for the device.
        """
        probs = self.gamma ** torch.arange(self.max_sim_iters + 1, dtype=torch.float64)
        return torch.multinomial(probs / probs.sum(), batch, replacement=True)

    @torch.no_grad()
    def simulate_clicks(self, embeddings: Tensor, target: Tensor, valid: Tensor, num_iters: Tensor
                        ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Clicks and previous logits for the gradient step.

        Args:
            embeddings (Tensor): (B, 256, h, w), detached.
            target (Tensor): (B, H, W) bool object mask in the input frame.
            valid (Tensor): (B, H, W) bool, False on padding / unknown pixels.
            num_iters (Tensor): (B,) k per sample; on the CPU (as :meth:`draw_num_iters`
                gives it) the loop length costs no device sync.

        Returns:
            tuple: points (B, 1 + max k, 2) (x, y), labels (B, 1 + max k) with -1 for
            clicks a sample does not take, previous low-res logits (B, 1, 4h, 4w) and
            their validity (B,) (False for k = 0).
        """
        batch, (height, width) = target.shape[0], target.shape[-2:]
        device = target.device
        steps = int(num_iters.max()) if batch else 0  # no device sync: k is drawn on the CPU
        if device.type == 'cuda' and num_iters.device.type == 'cpu':
            num_iters = num_iters.pin_memory()  # an asynchronous copy needs pinned memory
        num_iters = num_iters.to(device, non_blocking=True)
        clicked = torch.zeros(batch, height, width, dtype=torch.bool, device=device)  # contiguous: viewed flat
        xs_list: List[Tensor] = []
        ys_list: List[Tensor] = []
        labels_list: List[Tensor] = []

        def add(ys, xs, positive, take):
            labels_list.append(torch.where(take, positive.long(), -1))
            ys_list.append(torch.where(take, ys, 0))
            xs_list.append(torch.where(take, xs, 0))
            # Mark the clicks without a data-dependent index (no host sync): samples that
            # take no click write their pixel 0's own value back.
            flat = clicked.view(batch, height * width)
            idx = torch.where(take, ys * width + xs, 0).view(batch, 1)
            flat.scatter_(1, idx, flat.gather(1, idx) | take.view(batch, 1))

        ys, xs, positive, has = sample_click_torch(torch.zeros_like(target), target, clicked, valid, first=True)
        add(ys, xs, positive, has)
        prev = embeddings.new_zeros(batch, 1, 4 * embeddings.shape[-2], 4 * embeddings.shape[-1])
        prev_valid = torch.zeros(batch, dtype=torch.bool, device=device)
        for step in range(steps):
            active = num_iters > step
            points = torch.stack([torch.stack(xs_list, 1), torch.stack(ys_list, 1)], -1).float()
            low, _ = self.decode(embeddings, points, torch.stack(labels_list, 1), prev, prev_valid)
            prev = torch.where(active.view(-1, 1, 1, 1), low.to(prev.dtype), prev)
            prev_valid = prev_valid | active
            pred = (self.upsample_logits(low, (height, width))[:, 0] > 0) & valid
            ys, xs, positive, has = sample_click_torch(pred, target, clicked, valid,
                                                       threshold=self.click_threshold)
            add(ys, xs, positive, has & active)
        points = torch.stack([torch.stack(xs_list, 1), torch.stack(ys_list, 1)], -1).float()
        return points, torch.stack(labels_list, 1), prev, prev_valid

    def loss(self, inputs: Tensor, data_samples: list) -> Dict[str, Tensor]:
        """Normalized focal loss of the last click step, and its IoU for the logs."""
        gt = torch.stack([s.gt_mask for s in data_samples]).to(inputs.device)  # (B, 1, H, W) uint8
        if gt.shape[-2:] != inputs.shape[-2:]:
            raise ValueError(f'gt masks {tuple(gt.shape[-2:])} and inputs {tuple(inputs.shape[-2:])} '
                             'differ in size: pad both with the data preprocessor')
        valid, target = gt[:, 0] != 255, gt[:, 0] == 1
        embeddings = self.extract_feat(inputs)
        num_iters = self.draw_num_iters(inputs.shape[0])
        points, labels, prev, prev_valid = self.simulate_clicks(embeddings.detach(), target, valid, num_iters)
        low, _ = self.decode(embeddings, points, labels, prev, prev_valid)
        logits = self.upsample_logits(low, tuple(inputs.shape[-2:]))
        losses = dict(loss_nfl=self.loss_fn(logits, gt))
        with torch.no_grad():
            pred = logits[:, 0] > 0
            inter = (pred & target & valid).flatten(1).sum(1).float()
            union = ((pred | target) & valid).flatten(1).sum(1).float()
            losses['iou'] = (inter / union.clamp(min=1)).mean()
            losses['num_clicks'] = (labels >= 0).sum(1).float().mean()
        return losses
