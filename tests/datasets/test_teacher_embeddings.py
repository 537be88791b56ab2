"""LoadTeacherEmbedding and the manifest helpers: a stored embedding or a clear error, never a recomputation."""
import hashlib
import json
import os

import numpy as np
import pytest
from mmengine.registry import DefaultScope

from mmhrsam.datasets.teacher_embeddings import (MANIFEST_NAME, RESIZE_RULE, LoadTeacherEmbedding,
                                                 embedding_file_name, image_checksum, image_entry, new_manifest,
                                                 preprocessing_record, read_manifest, save_embedding, write_manifest)
from mmhrsam.registry import TRANSFORMS

PRE = dict(target_size=64, mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_input=True)


def random_image(seed, shape=(20, 30, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture
def store(tmp_path):
    """A directory with two stored embeddings and their manifest, written by the helpers."""
    manifest = new_manifest(dict(name='tiny', checkpoint=None, checkpoint_sha1=None, checkpoint_size=None),
                            preprocessing_record(**PRE))
    images = {'img-a': random_image(0), 'coco/b 1.jpg': random_image(1, (16, 8, 3))}
    for img_id, image in images.items():
        embedding = np.random.default_rng(len(img_id)).standard_normal((256, 4, 4)).astype(np.float16)
        save_embedding(str(tmp_path), embedding_file_name(img_id), embedding)
        manifest['images'][img_id] = image_entry(img_id, None, image_checksum(image), image.shape[:2], embedding)
    write_manifest(str(tmp_path), manifest)
    return tmp_path, images


def load(directory, img_id, image, **kwargs):
    return LoadTeacherEmbedding(str(directory), **kwargs)(dict(img_id=img_id, img=image))


def test_loads_the_stored_embedding(store):
    directory, images = store
    for img_id, image in images.items():
        entry = read_manifest(str(directory))['images'][img_id]
        results = load(directory, img_id, image.copy(), preprocessing=PRE)
        expected = np.load(directory / entry['file'])
        assert results['teacher_embedding'].dtype == np.float16 and results['teacher_embedding'].shape == (256, 4, 4)
        np.testing.assert_array_equal(results['teacher_embedding'], expected)
        assert results['img'].shape == image.shape  # the image is left as it is


def test_built_from_the_registry_and_in_bgr_order(store):
    directory, images = store
    with DefaultScope.overwrite_default_scope('mmhrsam'):
        transform = TRANSFORMS.build(dict(type='LoadTeacherEmbedding', embedding_dir=str(directory),
                                          preprocessing=dict(target_size=64), channel_order='bgr'))
    results = transform(dict(img_id='img-a', img=images['img-a'][..., ::-1].copy()))
    assert results['teacher_embedding'].shape == (256, 4, 4)


def test_manifest_is_read_once(store):
    directory, images = store
    transform = LoadTeacherEmbedding(str(directory))
    transform(dict(img_id='img-a', img=images['img-a']))
    os.remove(directory / MANIFEST_NAME)
    transform(dict(img_id='coco/b 1.jpg', img=images['coco/b 1.jpg']))  # cached
    with pytest.raises(FileNotFoundError, match='no teacher-embedding manifest.*extract_teacher_embeddings'):
        load(directory, 'img-a', images['img-a'])


def test_missing_id(store):
    directory, _ = store
    with pytest.raises(RuntimeError, match="no teacher embedding for image 'img-z'.*regenerate"):
        load(directory, 'img-z', random_image(9))


def test_deleted_file(store):
    directory, images = store
    os.remove(directory / embedding_file_name('img-a'))
    with pytest.raises(FileNotFoundError, match="teacher embedding file .* of image 'img-a' is missing"):
        load(directory, 'img-a', images['img-a'])


def test_altered_image(store):
    directory, images = store
    altered = images['img-a'].copy()
    altered[3, 4, 1] ^= 1
    with pytest.raises(RuntimeError, match='checksum mismatch'):
        load(directory, 'img-a', altered)
    with pytest.raises(RuntimeError, match='checksum mismatch'):  # e.g. resized before the transform
        load(directory, 'img-a', images['img-a'][:, :-1].copy())
    with pytest.raises(RuntimeError, match='checksum mismatch'):  # BGR image read as RGB
        load(directory, 'img-a', images['img-a'][..., ::-1].copy())
    assert 'teacher_embedding' in load(directory, 'img-a', altered, verify_checksum=False)


@pytest.mark.parametrize('preprocessing,what', [(dict(PRE, bgr_input=False), 'bgr_input'),
                                                (dict(PRE, target_size=1024), 'target_size'),
                                                (dict(PRE, mean=[0.0, 0.0, 0.0]), 'mean')])
def test_different_preprocessing(store, preprocessing, what):
    directory, images = store
    with pytest.raises(RuntimeError, match=f'another preprocessing: {what}'):
        load(directory, 'img-a', images['img-a'], preprocessing=preprocessing)


def test_changed_resize_rule_and_bad_manifest(store):
    directory, images = store
    manifest = json.loads((directory / MANIFEST_NAME).read_text())
    manifest['preprocessing']['resize'] = 'nearest'
    write_manifest(str(directory), manifest)
    with pytest.raises(RuntimeError, match='resize rule'):
        load(directory, 'img-a', images['img-a'], preprocessing=dict(target_size=64))
    (directory / MANIFEST_NAME).write_text('{"images": {}}')
    with pytest.raises(RuntimeError, match='not a version-1'):
        load(directory, 'img-a', images['img-a'])


def test_shape_mismatch(store):
    directory, images = store
    save_embedding(str(directory), embedding_file_name('img-a'), np.zeros((256, 8, 8), np.float16))
    with pytest.raises(RuntimeError, match=r'has shape \(256, 8, 8\).*records \(256, 4, 4\)'):
        load(directory, 'img-a', images['img-a'])


def test_bad_arguments_and_inputs(store):
    directory, images = store
    with pytest.raises(ValueError, match='unknown preprocessing keys'):
        LoadTeacherEmbedding(str(directory), preprocessing=dict(size=64))
    with pytest.raises(RuntimeError, match='img_id'):
        LoadTeacherEmbedding(str(directory))(dict(img=images['img-a']))
    with pytest.raises(ValueError, match='uint8'):
        image_checksum(images['img-a'].astype(np.float32))


def test_helpers(tmp_path):
    image = random_image(3)
    header = b'20x30x3:uint8:'
    assert image_checksum(image) == hashlib.sha1(header + image.tobytes()).hexdigest()
    assert image_checksum(np.asfortranarray(image)) == image_checksum(image)
    assert embedding_file_name('000000123') == '000000123.npy'
    names = {embedding_file_name(i) for i in ('a/b', 'a_b', 'a b', '../x', '.hidden', 'é', 'x' * 300)}
    assert len(names) == 7
    for name in names:
        assert name.endswith('.npy') and '/' not in name and name[0].isalnum() and len(name) < 130
    assert preprocessing_record(**PRE)['resize'] == RESIZE_RULE
    write_manifest(str(tmp_path), dict(a=1))
    assert os.listdir(tmp_path) == [MANIFEST_NAME]  # no temporary file left


def test_manifest_write_is_atomic(tmp_path, monkeypatch):
    write_manifest(str(tmp_path), dict(version='old'))

    def broken_replace(src, dst):
        raise OSError('disk full')
    monkeypatch.setattr(os, 'replace', broken_replace)
    with pytest.raises(OSError, match='disk full'):
        write_manifest(str(tmp_path), dict(version='new'))
    assert json.loads((tmp_path / MANIFEST_NAME).read_text()) == dict(version='old')
    assert os.listdir(tmp_path) == [MANIFEST_NAME]
