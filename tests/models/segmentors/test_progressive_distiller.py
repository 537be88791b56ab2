"""ProgressiveDistiller: the stage schedule, each loss term against a hand computation with
the encoders' own out_indices (not the distiller's hooks), stored targets against online
ones, frozen parts, and the synthetic recipe config: every stage lowers its loss on a fixed
batch, and a Runner switches stages by iteration."""
import os
import uuid

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.logging import MessageHub

import mmhrsam  # noqa: F401
from mmhrsam.models.backbones import SAMLightening, SAMViT
from mmhrsam.models.segmentors.progressive_distiller import check_stages
from mmhrsam.registry import MODELS
from mmhrsam.structures import InteractiveDataSample

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
RECIPE = os.path.join(ROOT, 'configs', 'sam_lightening',
                      'sam-lightening-tiny_progressive-distill_1xb2_90it_synthetic-256.py')
STUDENT_ARCH = dict(embed_dim=16, depth=2, num_heads=2, attn_pattern=(2, 'window'))
TEACHER_ARCH = dict(embed_dim=24, depth=3, num_heads=2, global_attn_indexes=(2, ))
HEAD = dict(type='SAMHead', image_size=64, decoder_mlp_dim=64, decoder_num_heads=2, iou_head_hidden_dim=32)
STAGES = [dict(begin=0, feature=1.0), dict(begin=10, embedding=2.0), dict(begin=20, embedding=1.0, mask=0.5)]
PAIRS = [('blocks.0', 'blocks.1'), ('blocks.1', 'blocks.2')]


def set_iteration(i):
    MessageHub.get_current_instance().update_info('iter', i)


def build(**kw):
    torch.manual_seed(0)
    cfg = dict(type='ProgressiveDistiller', backbone=dict(type='SAMLightening', arch=STUDENT_ARCH, img_size=64),
               head=HEAD, stages=STAGES, feature_pairs=PAIRS, mask_points_per_side=2)
    cfg.update(kw)
    return MODELS.build(cfg)


def online(**kw):
    return build(teacher=dict(type='SAMViT', arch=TEACHER_ARCH, img_size=64), **kw)


def samples(n, img_shape=(64, 48)):
    return [InteractiveDataSample(metainfo=dict(img_id=f'im{i}', img_shape=img_shape)) for i in range(n)]


def test_stage_checks():
    assert [s['mask'] for s in check_stages(STAGES)] == [0.0, 0.0, 0.5]
    for bad, match in [([], 'at least one'), ([dict(begin=5, feature=1.0)], 'start at 0'),
                       ([dict(begin=0, feature=1.0), dict(begin=0, mask=1.0)], 'increase'),
                       ([dict(begin=0, feature=-1.0, mask=1.0)], '>= 0'), ([dict(begin=0)], 'at least one > 0'),
                       ([dict(begin=0, features=1.0)], 'unknown')]:
        with pytest.raises(ValueError, match=match):
            check_stages(bad)
    model = online()
    assert [model.stage_index(i) for i in (0, 9, 10, 19, 20, 10 ** 6)] == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match='feature_pairs is empty'):
        build(feature_pairs=())
    with pytest.raises(ValueError, match='teacher_channels'):
        build()  # stored features: their width must be given
    with pytest.raises(ValueError, match='teacher_channels=7'):
        online(teacher_channels=7)
    with pytest.raises(AttributeError):
        online(feature_pairs=[('blocks.0', 'blocks.9')])
    with pytest.raises(ValueError, match='frozen_modules'):
        online(frozen_modules=())


def test_iteration_comes_from_the_message_hub():
    model = online()
    MessageHub.get_instance(f'fresh-{uuid.uuid4()}')  # the current instance now has no 'iter'
    with pytest.raises(RuntimeError, match='message hub'):
        model(torch.randn(1, 3, 64, 64), samples(1), mode='loss')


def reference_outputs(model, x):
    """Student and teacher outputs through their own out_indices (no hooks), same weights."""
    student = SAMLightening(STUDENT_ARCH, img_size=64, out_indices=(0, 1)).eval()
    student.load_state_dict(model.backbone.state_dict())
    teacher = SAMViT(TEACHER_ARCH, img_size=64, out_indices=(1, 2)).eval()
    teacher.load_state_dict(model.teacher.state_dict())
    with torch.no_grad():
        return student(x), teacher(x)


def test_each_term_equals_the_hand_computation():
    model = online().eval()
    x = torch.randn(2, 3, 64, 64)
    (s0, s1, s_emb), (t1, t2, t_emb) = reference_outputs(model, x)
    projs = model.feature_projs
    assert all(isinstance(p, torch.nn.Conv2d) and p.in_channels == 16 and p.out_channels == 24 for p in projs)
    with torch.no_grad():
        set_iteration(3)
        losses = model(x, samples(2), mode='loss')
        assert set(losses) == {'loss_feature', 'stage'} and losses['stage'] == 0
        expected = (F.mse_loss(projs[0](s0), t1) + F.mse_loss(projs[1](s1), t2)) / 2
        torch.testing.assert_close(losses['loss_feature'], expected)

        set_iteration(10)
        losses = model(x, samples(2), mode='loss')
        assert set(losses) == {'loss_embedding', 'stage'} and losses['stage'] == 1
        torch.testing.assert_close(losses['loss_embedding'], 2.0 * ((s_emb - t_emb) ** 2).mean())

        set_iteration(25)
        losses = model(x, samples(2), mode='loss')
        assert set(losses) == {'loss_embedding', 'loss_mask', 'stage'} and losses['stage'] == 2
        # one positive click at each point of a 2x2 grid over the 64 x 48 image: (x, y) = (12, 16), (36, 16), ...
        points = torch.tensor([[[12., 16.]], [[36., 16.]], [[12., 48.]], [[36., 48.]]])
        labels = torch.ones(4, 1, dtype=torch.long)
        terms = []
        for i in range(2):
            s_logits, _ = model.head(s_emb[i:i + 1], points, labels)
            t_prob = model.head(t_emb[i:i + 1], points, labels)[0].sigmoid()
            terms.append(-(t_prob * F.logsigmoid(s_logits) + (1 - t_prob) * F.logsigmoid(-s_logits)).mean())
        torch.testing.assert_close(losses['loss_mask'], 0.5 * (terms[0] + terms[1]) / 2)


def test_stored_targets_give_the_online_losses():
    teacher_model = online().eval()
    stored_model = build(teacher_channels=24).eval()
    stored_model.load_state_dict({k: v for k, v in teacher_model.state_dict().items()
                                  if not k.startswith('teacher.')})
    x = torch.randn(2, 3, 64, 64)
    _, (t1, t2, t_emb) = reference_outputs(teacher_model, x)
    data = samples(2)
    for i, s in enumerate(data):
        s.teacher_embedding = t_emb[i]
        s.teacher_features = {'blocks.1': t1[i], 'blocks.2': t2[i]}
    with torch.no_grad():
        for iteration in (0, 10, 20):
            set_iteration(iteration)
            want, got = teacher_model(x, samples(2), mode='loss'), stored_model(x, data, mode='loss')
            assert want.keys() == got.keys()
            for key in want:
                torch.testing.assert_close(got[key], want[key], msg=f'{key} at {iteration}')
        set_iteration(0)
        del data[1].teacher_features['blocks.2']
        with pytest.raises(KeyError, match="'blocks.2'.*im1"):
            stored_model(x, data, mode='loss')


def test_only_the_student_and_projections_learn():
    model = online()
    model.train()
    assert not model.head.training and not model.teacher.training and model.backbone.training
    set_iteration(0)
    model(torch.randn(1, 3, 64, 64), samples(1), mode='loss')['loss_feature'].backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert all(p.grad is None for p in model.head.parameters())
    assert model.feature_projs[0].weight.grad.abs().sum() > 0
    assert model.backbone.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    set_iteration(20)
    model.zero_grad()
    model(torch.randn(1, 3, 64, 64), samples(1), mode='loss')['loss_mask'].backward()
    assert model.backbone.neck[0].weight.grad.abs().sum() > 0  # through the frozen decoder


# ---------------------------------------------------------------------- the recipe config
@pytest.fixture(scope='module')
def recipe():
    pytest.importorskip('mmcv.transforms')
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import DefaultScope
    from mmhrsam.registry import DATASETS

    cfg = Config.fromfile(RECIPE)
    with DefaultScope.overwrite_default_scope('mmhrsam'):
        dataset = DATASETS.build(cfg.train_dataloader.dataset)
        batch = pseudo_collate([dataset[0]])
    return cfg, batch


def test_recipe_lowers_the_loss_of_every_stage_on_a_fixed_batch(recipe):
    cfg, batch = recipe
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.train()
    data = model.data_preprocessor(batch, training=True)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    for stage in cfg.model.stages:
        set_iteration(stage['begin'])
        history = []
        for _ in range(3):
            losses = model(**data, mode='loss')
            total = sum(v for k, v in losses.items() if k.startswith('loss'))
            optimizer.zero_grad()
            total.backward()
            optimizer.step()
            history.append(float(total.detach()))
        assert all(b < a for a, b in zip(history, history[1:])), (stage, history)


def test_runner_switches_stages_by_iteration(recipe, tmp_path):
    from mmengine.runner import Runner
    cfg, _ = recipe
    cfg = cfg.copy()
    cfg.model.stages = [dict(begin=0, feature=1.0), dict(begin=2, embedding=1.0),
                        dict(begin=4, embedding=1.0, mask=1.0)]
    cfg.train_cfg.max_iters = 5
    cfg.train_dataloader.batch_size = 1
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = 100
    cfg.work_dir = str(tmp_path)
    cfg.experiment_name = f'progressive-{uuid.uuid4()}'
    runner = Runner.from_cfg(cfg)
    runner.train()
    hub = runner.message_hub
    assert list(hub.get_scalar('train/stage').data[0]) == [0, 0, 1, 1, 2]
    assert len(hub.get_scalar('train/loss_feature').data[0]) == 2
    assert len(hub.get_scalar('train/loss_mask').data[0]) == 1
