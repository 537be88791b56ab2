"""Normalized Focal Loss (NFL) for click-based interactive segmentation (docs/architecture.md).

The loss of RITM / SimpleClick (``NormalizedFocalLossSigmoid`` with ``alpha=0.5``,
``gamma=2``, ``size_average=True``, ``detach_delimeter=True``), written from its
definition. For one sample with logits ``x`` and target ``t`` (1 object, 0 background,
``ignore_index`` ignored), over its valid pixels ``V``::

    p       = sigmoid(x)
    pt      = p where t == 1, else 1 - p             (1 on ignored pixels)
    alpha_t = alpha where t == 1, else 1 - alpha     (0 on ignored pixels)
    beta    = (1 - pt) ** gamma
    norm    = |V| / (sum_V beta + eps)               (detached: a constant for autograd)
    l       = -alpha_t * beta * norm * log(min(pt + eps, 1))
    loss    = sum_V l / (|V| + eps)

and the batch loss is the mean of the per-sample losses, times ``loss_weight``.

Reduction, exactly RITM's: its ``size_average=True`` branch divides each sample's
pixel sum by that sample's number of valid pixels (plus eps) and returns one value per
sample; its trainer then takes ``torch.mean`` over the batch. Since ``sum_V beta * norm``
is ``|V|`` (up to eps), the per-sample loss is the ``beta``-weighted average of the
alpha-weighted cross-entropy over valid pixels: the focal re-weighting moves weight
between pixels without changing the loss scale, whatever the fraction of hard pixels.
A sample without valid pixels contributes 0 (and still counts in the batch mean).
"""
from __future__ import annotations

from torch import Tensor, nn

from mmhrsam.registry import MODELS


@MODELS.register_module()
class NormalizedFocalLoss(nn.Module):
    """Sigmoid Normalized Focal Loss, see the module docstring for the formula.

    ``MODELS.build(dict(type='NormalizedFocalLoss'))(logits, target)`` -> scalar.

    Args:
        alpha (float): weight of object pixels; background pixels get ``1 - alpha``.
        gamma (float): focusing exponent of ``(1 - pt)``.
        eps (float): added to ``pt`` inside the log, to the normalizer's denominator and
            to the valid-pixel count of the per-sample average (RITM's single eps).
        ignore_index (int): target value of pixels that do not contribute.
        loss_weight (float): factor applied to the returned loss.
    """

    def __init__(self,
                 alpha: float = 0.5,
                 gamma: float = 2.0,
                 eps: float = 1e-12,
                 ignore_index: int = 255,
                 loss_weight: float = 1.0):
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f'alpha must lie in [0, 1], got {alpha}')
        if gamma < 0:
            raise ValueError(f'gamma must be >= 0, got {gamma}')
        if ignore_index in (0, 1):
            raise ValueError('ignore_index must differ from the labels 0 and 1')
        self.alpha, self.gamma, self.eps = float(alpha), float(gamma), float(eps)
        self.ignore_index = int(ignore_index)
        self.loss_weight = float(loss_weight)

    def _check_inputs(self, logits: Tensor, target: Tensor) -> None:
        if logits.dim() != 4 or logits.shape[1] != 1:
            raise ValueError(f'logits must have shape (B, 1, H, W), got {tuple(logits.shape)}')
        if target.shape != logits.shape:
            raise ValueError(f'target shape {tuple(target.shape)} differs from logits shape '
                             f'{tuple(logits.shape)}')
        if not logits.is_floating_point():
            raise ValueError(f'logits must be floating point, got {logits.dtype}')
        valid_values = (target == 0) | (target == 1) | (target == self.ignore_index)
        if not bool(valid_values.all()):
            bad = target[~valid_values].unique()[:10].tolist()
            raise ValueError(f'target values must be 0, 1 or ignore_index={self.ignore_index}; '
                             f'got {bad}')

    def per_sample(self, logits: Tensor, target: Tensor) -> Tensor:
        """Per-sample losses (B,), without ``loss_weight``; arguments as :meth:`forward`."""
        self._check_inputs(logits, target)
        # float32 even under autocast: (1 - pt) ** gamma and log(pt) need the precision.
        prob = logits.float().sigmoid()
        valid = target != self.ignore_index
        positive = target == 1
        pt = prob.where(positive, 1 - prob).where(valid, prob.new_ones(()))
        alpha_t = valid * prob.new_tensor(self.alpha).where(positive, prob.new_tensor(1 - self.alpha))
        beta = (1 - pt) ** self.gamma  # 0 on ignored pixels (pt == 1)
        num_valid = valid.sum(dim=(1, 2, 3)).to(prob.dtype)
        # Detached: a per-sample scale, not a path for gradients (RITM's detach_delimeter).
        normalizer = (num_valid / (beta.sum(dim=(1, 2, 3)) + self.eps)).detach()
        log_pt = (pt + self.eps).clamp(max=1.0).log()
        pixel_loss = -alpha_t * beta * log_pt  # alpha_t is 0 on ignored pixels
        return pixel_loss.sum(dim=(1, 2, 3)) * normalizer / (num_valid + self.eps)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Args:
            logits (Tensor): (B, 1, H, W) raw mask logits (before the sigmoid).
            target (Tensor): (B, 1, H, W) with values 0, 1 and ``ignore_index``; any dtype.

        Returns:
            Tensor: scalar float32 loss, the batch mean of per-sample losses times
            ``loss_weight``.

        Raises:
            ValueError: shapes differ or are not (B, 1, H, W), or the target holds other values.
        """
        return self.per_sample(logits, target).mean() * self.loss_weight

    def extra_repr(self) -> str:
        return (f'alpha={self.alpha}, gamma={self.gamma}, eps={self.eps}, '
                f'ignore_index={self.ignore_index}, loss_weight={self.loss_weight}')
