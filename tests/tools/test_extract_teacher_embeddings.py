"""tools/extract_teacher_embeddings.py in-process on a tiny registered dataset and a tiny SAMViT teacher."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from mmhrsam.structures.image_geometry import preprocess_image
from mmhrsam.datasets.teacher_embeddings import (MANIFEST_NAME, RESIZE_RULE, LoadTeacherEmbedding,
                                                 embedding_file_name, image_checksum)
from mmhrsam.registry import DATASETS, MODELS
from tool_loader import load_tool

ROOT = Path(__file__).resolve().parents[2]
MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
TEACHER = dict(type='SAMViT', img_size=64, arch=dict(embed_dim=32, depth=1, num_heads=2, global_attn_indexes=[0]))
DATASET_NAME = 'TinyTeacherTestImages'


tool = load_tool('tools/extract_teacher_embeddings.py', 'extract_teacher_embeddings')


class TinyImages:
    """Four instances of three images (one image has two instances; one id needs sanitizing).

    Args:
        altered (list[str]): ids whose image gets one pixel changed.
    """

    SPECS = [('img-0', (40, 56)), ('coco/img 1.jpg', (64, 30)), ('img-0', (40, 56)), ('img-2', (20, 20))]

    def __init__(self, altered=()):
        self.altered = set(altered)

    def __len__(self):
        return len(self.SPECS)

    def get_data_info(self, index):
        return dict(img_id=self.SPECS[index][0], img_path=f'/data/{self.SPECS[index][0]}', instance_id=str(index))

    def load_image(self, index):
        img_id, shape = self.SPECS[index]
        image = np.random.default_rng(sum(map(ord, img_id))).integers(0, 256, (*shape, 3), dtype=np.uint8)
        if img_id in self.altered:
            image[0, 0, 0] ^= 1
        return image


@pytest.fixture
def setup(tmp_path):
    """Registered dataset, a training config, a teacher config and its checkpoint."""
    DATASETS.register_module(name=DATASET_NAME, module=TinyImages, force=True)
    torch.manual_seed(0)
    teacher = MODELS.build(TEACHER).eval()
    checkpoint = tmp_path / 'teacher.pth'  # in the project's layout: prefixed, stripped by the tool
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in teacher.state_dict().items()}}, checkpoint)
    (tmp_path / 'teacher.py').write_text(f'model = dict(type="InteractiveSAM", backbone={TEACHER!r})\n')
    write_config(tmp_path / 'train.py')
    yield tmp_path, teacher
    DATASETS._module_dict.pop(DATASET_NAME, None)


def write_config(path, altered=()):
    path.write_text(f'train_dataloader = dict(dataset=dict(type={DATASET_NAME!r}, altered={list(altered)!r}))\n'
                    f'model = dict(data_preprocessor=dict(mean={MEAN}, std={STD}, bgr_input=True))\n')


def run(tmp_path, *extra, config='train.py'):
    return tool.main([str(tmp_path / config), '--teacher', str(tmp_path / 'teacher.py'), '--checkpoint',
                      str(tmp_path / 'teacher.pth'), '--out', str(tmp_path / 'emb'), '--device', 'cpu',
                      '--target-size', '64', *extra])


def test_writes_embeddings_equal_to_an_independent_run(setup):
    tmp_path, teacher = setup
    assert run(tmp_path, '--batch-size', '2') == dict(computed=3, skipped=0)
    out = tmp_path / 'emb'
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest['preprocessing'] == dict(target_size=64, mean=MEAN, std=STD, bgr_input=True, resize=RESIZE_RULE)
    assert manifest['teacher']['name'] == str(tmp_path / 'teacher.py')
    assert manifest['teacher']['checkpoint_size'] == os.path.getsize(tmp_path / 'teacher.pth')
    assert len(manifest['teacher']['checkpoint_sha1']) == 40
    dataset = TinyImages()
    assert sorted(manifest['images']) == ['coco/img 1.jpg', 'img-0', 'img-2']
    assert sorted(os.listdir(out)) == sorted([MANIFEST_NAME] + [embedding_file_name(i) for i in manifest['images']])
    for index in (0, 1, 3):
        info, image = dataset.get_data_info(index), dataset.load_image(index)
        entry = manifest['images'][info['img_id']]
        assert entry == dict(img_id=info['img_id'], file=embedding_file_name(info['img_id']),
                             img_path=info['img_path'], ori_shape=list(image.shape[:2]),
                             image_sha1=image_checksum(image), embedding_shape=[256, 4, 4],
                             embedding_dtype='float16')
        stored = np.load(out / entry['file'])
        x, _ = preprocess_image(image, 64, MEAN, STD, bgr_input=True)
        with torch.no_grad():
            expected = teacher(x)[-1][0].numpy()
        assert stored.dtype == np.float16
        np.testing.assert_allclose(stored.astype(np.float32), expected, rtol=2e-3, atol=2e-3)
        # and the training-side transform serves it
        results = LoadTeacherEmbedding(str(out), preprocessing=dict(target_size=64, mean=MEAN, std=STD,
                                                                    bgr_input=True))(dict(img_id=info['img_id'],
                                                                                          img=image))
        np.testing.assert_array_equal(results['teacher_embedding'], stored)


def test_resume_skips_intact_and_recomputes_missing_or_changed(setup):
    tmp_path, _ = setup
    out = tmp_path / 'emb'
    run(tmp_path)
    file_2 = out / embedding_file_name('img-2')
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob('*.npy')}
    assert run(tmp_path, '--num-workers', '1') == dict(computed=0, skipped=3)
    assert {p: p.stat().st_mtime_ns for p in out.glob('*.npy')} == mtimes

    os.remove(out / embedding_file_name('img-0'))
    file_2.write_bytes(b'truncated')
    assert run(tmp_path) == dict(computed=2, skipped=1)

    write_config(tmp_path / 'altered.py', altered=['img-2'])
    old_sha = json.loads((out / MANIFEST_NAME).read_text())['images']['img-2']['image_sha1']
    with pytest.raises(RuntimeError, match='checksum mismatch'):  # the stored target is for the old image
        LoadTeacherEmbedding(str(out))(dict(img_id='img-2', img=TinyImages(['img-2']).load_image(3)))
    assert run(tmp_path, config='altered.py') == dict(computed=1, skipped=2)
    new_sha = json.loads((out / MANIFEST_NAME).read_text())['images']['img-2']['image_sha1']
    assert new_sha != old_sha == image_checksum(TinyImages().load_image(3))


def test_refuses_to_mix_preprocessing_or_teachers(setup):
    tmp_path, teacher = setup
    run(tmp_path)
    with pytest.raises(RuntimeError, match='bgr_input'):
        run(tmp_path, '--no-bgr-input')
    torch.save({k: v + 1 for k, v in teacher.state_dict().items()}, tmp_path / 'teacher.pth')
    with pytest.raises(RuntimeError, match='checkpoint_sha1'):
        run(tmp_path)


def test_sam_teacher_names(setup, monkeypatch):
    """The segment_anything path, with a tiny encoder standing in for sam_model_registry['vit_b']."""
    import segment_anything
    tmp_path, teacher = setup
    calls = []

    def tiny_sam(checkpoint=None):
        calls.append(checkpoint)
        return torch.nn.ModuleDict(dict(image_encoder=teacher))
    monkeypatch.setitem(segment_anything.sam_model_registry, 'vit_b', tiny_sam)
    with pytest.raises(ValueError, match='needs --checkpoint'):
        tool.build_teacher('sam_vit_b', None, 64)
    with pytest.raises(ValueError, match='--target-size 64'):
        tool.build_teacher('sam_vit_b', str(tmp_path / 'teacher.pth'), 1024)
    with pytest.raises(ValueError, match='--teacher must be'):
        tool.build_teacher('sam_vit_x', None, 64)
    encoder, record = tool.build_teacher('sam_vit_b', str(tmp_path / 'teacher.pth'), 64)
    assert encoder is teacher and calls[-1] == str(tmp_path / 'teacher.pth')
    assert record['name'] == 'sam_vit_b' and record['checkpoint_size'] == os.path.getsize(tmp_path / 'teacher.pth')


def test_preprocessing_from_config_sources():
    from mmengine.config import Config
    assert tool.resolve_preprocessing(Config(dict()), 1024, None) == dict(
        target_size=1024, mean=list(tool.DEFAULT_MEAN), std=list(tool.DEFAULT_STD), bgr_input=False,
        resize=RESIZE_RULE)
    assert tool.resolve_preprocessing(Config(dict(predictor=dict(bgr_input=True))), 1024, None)['bgr_input']
    assert tool.resolve_preprocessing(Config(dict(model=dict(data_preprocessor=dict(rgb_to_bgr=True)))),
                                      1024, None)['bgr_input']
    assert not tool.resolve_preprocessing(Config(dict(predictor=dict(bgr_input=True))), 1024, False)['bgr_input']


SAM_CHECKPOINT = os.environ.get('MMHRSAM_SAM_VIT_B_CHECKPOINT', str(ROOT / 'checkpoints' / 'sam_vit_b_01ec64.pth'))


@pytest.mark.skipif(not os.path.isfile(SAM_CHECKPOINT), reason='no SAM ViT-B checkpoint '
                    '(set MMHRSAM_SAM_VIT_B_CHECKPOINT)')
def test_real_sam_vit_b_checkpoint(setup):
    tmp_path, _ = setup
    stats = tool.main([str(tmp_path / 'train.py'), '--teacher', 'sam_vit_b', '--checkpoint', SAM_CHECKPOINT,
                       '--out', str(tmp_path / 'sam'), '--device', 'cpu'])
    assert stats == dict(computed=3, skipped=0)
    manifest = json.loads((tmp_path / 'sam' / MANIFEST_NAME).read_text())
    assert {tuple(e['embedding_shape']) for e in manifest['images'].values()} == {(256, 64, 64)}


def test_named_intermediate_features(setup):
    """--features stores block outputs (fp16, one folder per feature) equal to the teacher's
    own out_indices outputs; the loader and PackDistillationInputs serve them; resume checks them."""
    from mmhrsam.datasets.teacher_embeddings import PackDistillationInputs, feature_file_name
    tmp_path, teacher = setup
    out = tmp_path / 'emb'
    assert run(tmp_path, '--features', 'blocks.0') == dict(computed=3, skipped=0)
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest['features'] == ['blocks.0']
    reference = MODELS.build(dict(TEACHER, out_indices=[0])).eval()
    reference.load_state_dict(teacher.state_dict())
    image = TinyImages().load_image(1)
    entry = manifest['images']['coco/img 1.jpg']
    assert entry['features'] == {'blocks.0': dict(file=feature_file_name('blocks.0', 'coco/img 1.jpg'),
                                                  shape=[32, 4, 4], dtype='float16')}
    stored = np.load(out / entry['features']['blocks.0']['file'])
    with torch.no_grad():
        expected = reference(preprocess_image(image, 64, MEAN, STD, bgr_input=True)[0])[0][0].numpy()
    np.testing.assert_allclose(stored.astype(np.float32), expected, rtol=2e-3, atol=2e-3)
    results = LoadTeacherEmbedding(str(out), features=['blocks.0'])(
        dict(img_id='coco/img 1.jpg', img=image, gt_mask=np.zeros(image.shape[:2], np.uint8)))
    sample = PackDistillationInputs()(results)['data_samples']
    np.testing.assert_array_equal(sample.teacher_features['blocks.0'].numpy(), stored)

    assert run(tmp_path, '--features', 'blocks.0') == dict(computed=0, skipped=3)
    os.remove(out / entry['features']['blocks.0']['file'])
    assert run(tmp_path, '--features', 'blocks.0') == dict(computed=1, skipped=2)
    with pytest.raises(RuntimeError, match='features'):  # the directory keeps its feature list
        run(tmp_path)
    with pytest.raises(RuntimeError, match='not stored'):
        LoadTeacherEmbedding(str(out), features=['blocks.9'])(dict(img_id='img-2', img=TinyImages().load_image(3)))
