"""NormalizedFocalLoss: hand-computed values, RITM's reduction, detached normalizer, input checks."""
import math

import pytest
import torch
import torch.nn.functional as F

import mmhrsam  # noqa: F401  (registers the loss)
from mmhrsam.models.losses import NormalizedFocalLoss
from mmhrsam.registry import MODELS


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


# One 2x2 sample: an object pixel at 50 %, a confident-but-wrong background pixel, an
# ignored pixel and an easy object pixel.
LOGITS = [[0.0, 2.0], [-1.0, 3.0]]
TARGET = [[1, 0], [255, 1]]


def hand_loss(alpha: float, gamma: float) -> float:
    """The 2x2 case by hand: (pt, alpha_t) of the three valid pixels, RITM's formula."""
    pixels = [(0.5, alpha),                   # logit 0, object
              (1 - sigmoid(2.0), 1 - alpha),  # logit 2, background
              (sigmoid(3.0), alpha)]          # logit 3, object; logit -1 is ignored
    betas = [(1 - pt) ** gamma for pt, _ in pixels]
    normalizer = 3 / sum(betas)
    total = sum(-a * b * normalizer * math.log(pt) for (pt, a), b in zip(pixels, betas))
    return total / 3  # per-sample sum over valid pixels / number of valid pixels


def as_inputs(logits, target, dtype=torch.uint8):
    return torch.tensor([[logits]], dtype=torch.float32), torch.tensor([[target]], dtype=dtype)


@pytest.mark.parametrize('alpha,gamma', [(0.5, 2.0), (0.25, 2.0), (0.5, 1.0)])
def test_hand_computed_value(alpha, gamma):
    loss = MODELS.build(dict(type='NormalizedFocalLoss', alpha=alpha, gamma=gamma))
    logits, target = as_inputs(LOGITS, TARGET)
    value = loss(logits, target)
    assert value.dim() == 0 and value.dtype == torch.float32
    assert value.item() == pytest.approx(hand_loss(alpha, gamma), rel=1e-5)


def test_defaults_and_loss_weight():
    loss = MODELS.build(dict(type='NormalizedFocalLoss'))
    assert (loss.alpha, loss.gamma, loss.eps, loss.ignore_index) == (0.5, 2.0, 1e-12, 255)
    logits, target = as_inputs(LOGITS, TARGET, dtype=torch.float32)  # float targets work too
    weighted = NormalizedFocalLoss(loss_weight=3.0)(logits, target)
    assert weighted.item() == pytest.approx(3 * hand_loss(0.5, 2.0), rel=1e-5)


def test_batch_mean_of_per_sample_losses():
    """Each sample is normalized on its own; the batch loss is the plain mean over samples,
    a sample with no valid pixel counting as 0."""
    loss = NormalizedFocalLoss()
    logits, target = as_inputs(LOGITS, TARGET)
    other_logits = torch.randn(1, 1, 2, 2)
    other_target = torch.tensor([[[[0, 1], [1, 1]]]], dtype=torch.uint8)
    all_ignored = torch.full((1, 1, 2, 2), 255, dtype=torch.uint8)
    batch = loss(torch.cat([logits, other_logits, logits]), torch.cat([target, other_target, all_ignored]))
    expected = (hand_loss(0.5, 2.0) + loss(other_logits, other_target).item() + 0.0) / 3
    assert batch.item() == pytest.approx(expected, rel=1e-5)
    assert loss(logits, all_ignored).item() == 0.0


def independent_loss(logits, target, normalizer):
    """Alpha-weighted focal BCE through logsigmoid, ``normalizer`` given as constants."""
    valid = (target != 255).float()
    y = (target == 1).float()
    log_pt = F.logsigmoid(logits) * y + F.logsigmoid(-logits) * (1 - y)
    beta = (1 - log_pt.exp()) ** 2
    alpha_t = 0.5 * valid
    per_sample = (-alpha_t * beta * log_pt).sum(dim=(1, 2, 3)) * normalizer / valid.sum(dim=(1, 2, 3))
    return per_sample.mean()


def test_matches_independent_formula_and_normalizer_gets_no_gradient():
    torch.manual_seed(0)
    logits = (torch.randn(3, 1, 8, 8) * 3).requires_grad_()
    target = torch.randint(0, 2, (3, 1, 8, 8), dtype=torch.uint8)
    target[:, :, :2] = 255
    loss = NormalizedFocalLoss()
    value = loss(logits, target)
    (grad, ) = torch.autograd.grad(value, logits)

    with torch.no_grad():  # the normalizer as plain numbers: |V| / sum_V beta
        valid = target != 255
        pt = torch.where(target == 1, logits.sigmoid(), 1 - logits.sigmoid())
        beta = torch.where(valid, (1 - pt) ** 2, torch.zeros(()))
        normalizer = valid.sum(dim=(1, 2, 3)) / beta.sum(dim=(1, 2, 3))
    expected = independent_loss(logits, target, normalizer)
    (expected_grad, ) = torch.autograd.grad(expected, logits)
    torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-4, atol=1e-8)
    assert grad[:, :, :2].abs().max() == 0  # ignored pixels get no gradient

    # The test is sensitive to the detach: a normalizer inside the graph changes the gradient.
    attached = (valid.sum(dim=(1, 2, 3)) / torch.where(valid, (1 - torch.where(
        target == 1, logits.sigmoid(), 1 - logits.sigmoid())) ** 2, torch.zeros(())).sum(dim=(1, 2, 3)))
    (attached_grad, ) = torch.autograd.grad(independent_loss(logits, target, attached), logits)
    assert not torch.allclose(attached_grad, grad, rtol=1e-3, atol=1e-6)


def test_saturated_logits_stay_finite():
    logits = torch.tensor([[[[40.0, -40.0], [-40.0, 40.0]]]], requires_grad=True)
    target = torch.tensor([[[[0, 1], [0, 1]]]], dtype=torch.uint8)  # two hopelessly wrong pixels
    value = NormalizedFocalLoss()(logits, target)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()
    assert value.item() > 1.0


@pytest.mark.parametrize('logits_shape,target_shape,values,match', [
    ((1, 1, 4, 4), (1, 1, 4, 5), (0, 1), 'differs'),
    ((1, 1, 4, 4), (1, 4, 4), (0, 1), 'differs'),
    ((1, 2, 4, 4), (1, 2, 4, 4), (0, 1), r'\(B, 1, H, W\)'),
    ((1, 1, 4, 4), (1, 1, 4, 4), (0, 2), 'target values'),
    ((1, 1, 4, 4), (1, 1, 4, 4), (0, 254), 'target values'),
])
def test_bad_inputs(logits_shape, target_shape, values, match):
    target = torch.tensor(values, dtype=torch.uint8)[torch.randint(0, 2, target_shape)]
    with pytest.raises(ValueError, match=match):
        NormalizedFocalLoss()(torch.randn(logits_shape), target)


def test_bad_arguments():
    with pytest.raises(ValueError):
        NormalizedFocalLoss(alpha=1.5)
    with pytest.raises(ValueError):
        NormalizedFocalLoss(ignore_index=1)
    with pytest.raises(ValueError, match='floating point'):
        NormalizedFocalLoss()(torch.zeros(1, 1, 2, 2, dtype=torch.long), torch.zeros(1, 1, 2, 2))
