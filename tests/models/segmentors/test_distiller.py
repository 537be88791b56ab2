"""SAMDistiller: MSE to stored embeddings, frozen head, errors on missing targets."""
import pytest
import torch

import mmhrsam  # noqa: F401
from mmhrsam.registry import MODELS
from mmhrsam.structures import InteractiveDataSample


def samples(embeddings, ids=('a', 'b')):
    out = []
    for i, emb in zip(ids, embeddings):
        s = InteractiveDataSample(metainfo=dict(img_id=i))
        if emb is not None:
            s.teacher_embedding = emb
        out.append(s)
    return out


def test_loss_is_the_mean_squared_error_to_the_teacher(tiny_parts):
    torch.manual_seed(0)
    model = MODELS.build(dict(type='SAMDistiller', loss_weight=2.0, **tiny_parts))
    inputs = torch.randn(2, 3, 64, 64)
    teacher = torch.randn(2, 32, 4, 4).half()
    loss = model(inputs, samples(teacher), mode='loss')['loss_distill']
    student = model.extract_feat(inputs)
    expected = 2.0 * sum(((student[i] - teacher[i].float()) ** 2).sum() for i in range(2)) / student.numel()
    torch.testing.assert_close(loss, expected)


def test_head_is_frozen_and_gets_no_gradient(tiny_parts):
    model = MODELS.build(dict(type='SAMDistiller', **tiny_parts))
    model.train()
    assert not model.head.training and model.backbone.training
    assert all(not p.requires_grad for p in model.head.parameters())
    loss = model(torch.randn(1, 3, 64, 64), samples([torch.randn(32, 4, 4)], ids=['a']), mode='loss')
    loss['loss_distill'].backward()
    assert all(p.grad is None for p in model.head.parameters())
    assert model.backbone.patch_embed.proj.weight.grad.abs().sum() > 0


def test_missing_teacher_embedding_is_an_error_naming_the_image(tiny_parts):
    model = MODELS.build(dict(type='SAMDistiller', **tiny_parts))
    with pytest.raises(KeyError, match="'b'"):
        model(torch.randn(2, 3, 64, 64), samples([torch.randn(32, 4, 4), None]), mode='loss')


def test_embedding_of_another_size_is_an_error(tiny_parts):
    model = MODELS.build(dict(type='SAMDistiller', **tiny_parts))
    with pytest.raises(ValueError, match='differ'):
        model(torch.randn(1, 3, 64, 64), samples([torch.randn(32, 8, 8)], ids=['a']), mode='loss')


def test_predict_mode_points_to_the_click_loop(tiny_parts):
    model = MODELS.build(dict(type='SAMDistiller', **tiny_parts))
    with pytest.raises(RuntimeError, match='ClickTestLoop'):
        model(torch.randn(1, 3, 64, 64), [], mode='predict')
