"""The annotation app's HTTP API through FastAPI's TestClient.

The real quickstart model (random weights, target size 256) checks that the served masks
are HRSAMPredictor's click chain, encoded as pycocotools RLE; the deterministic
:class:`DiskPredictor` stand-in checks chain reuse, serialization, out-of-memory answers
and the saved files, where the mask must be known in advance.
"""
import json
import threading
from io import BytesIO
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

pytest.importorskip('fastapi')
pytest.importorskip('multipart')
from fastapi.testclient import TestClient  # noqa: E402
from pycocotools import mask as mask_utils  # noqa: E402

from annotation_helpers import disk_factory, png_bytes, synthetic_scene  # noqa: E402
from mmhrsam.apis import HRSAMPredictor  # noqa: E402
from mmhrsam.apis.annotation import AppOptions, create_app, load_shared_model  # noqa: E402

CONFIG = str(Path(__file__).parents[2] / 'configs/quickstart/'
             'hrsam-tiny_kv-pad_1xb4_1000it_synthetic-256.py')


def make_client(tmp_path, factory, **options):
    options.setdefault('target_sizes', (256, 512))
    options.setdefault('default_target_size', 256)
    app = create_app(factory, AppOptions(out_dir=tmp_path / 'out', **options))
    return TestClient(app)


def upload(client, image, name='scene.png'):
    response = client.post('/api/images', files={'file': (name, png_bytes(image), 'image/png')})
    assert response.status_code == 200, response.text
    return response.json()


def decode(rle):
    return mask_utils.decode(dict(size=rle['size'], counts=rle['counts'].encode())).astype(bool)


def numpy_bbox(mask):
    ys, xs = np.nonzero(mask)
    return [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]


@pytest.fixture(scope='module')
def scene():
    image, masks = synthetic_scene(224)
    return np.ascontiguousarray(image[:160]), masks[:, :160]  # not square: catches (h, w) swaps


@pytest.fixture(scope='module')
def quickstart():
    return load_shared_model(CONFIG, None, 'cpu')


# ---------------------------------------------------------------------- real model
def test_predict_is_the_predictor_chain_in_coco_rle(tmp_path, scene, quickstart):
    image, _ = scene
    client = make_client(tmp_path, quickstart.new_predictor, model=quickstart.description)
    health = client.get('/api/health').json()
    assert health['status'] == 'ok' and health['device'] == 'cpu'
    assert 'random weights' in health['model'] and 'RANDOM' in quickstart.warning
    info = upload(client, image)
    assert (info['width'], info['height']) == (224, 160)
    clicks = [[100, 80], [30.0, 20.0]]
    answers = [client.post(f'/api/images/{info["image_id"]}/predict',
                           json=dict(points=clicks[:n], labels=[1, 0][:n], target_size=256,
                                     reset=n == 1)).json() for n in (1, 2)]
    # Reference: the predictor used directly, the first click's logits fed to the second.
    reference = HRSAMPredictor(quickstart.base.backbone, quickstart.base.head)
    reference.set_image(image, target_size=256)
    mask1, logits, score1 = reference.predict(np.array(clicks[:1]), np.array([1]))
    mask2, _, score2 = reference.predict(np.array(clicks), np.array([1, 0]), logits)
    for answer, mask, score in zip(answers, (mask1, mask2), (score1, score2)):
        assert answer['rle']['size'] == [160, 224]
        np.testing.assert_array_equal(decode(answer['rle']), mask)
        assert answer['area'] == int(mask.sum())
        if mask.any():
            assert answer['bbox'] == numpy_bbox(mask)
        assert answer['score'] == pytest.approx(score, abs=1e-6)


# ---------------------------------------------------------------------- chain and caching
def test_previous_logits_reused_and_embedding_cached(tmp_path, scene):
    factory, stats = disk_factory()
    client = make_client(tmp_path, factory)
    image_id = upload(client, scene[0])['image_id']
    url = f'/api/images/{image_id}/predict'
    for points, labels, reset in (([[10, 10]], [1], True), ([[10, 10], [50, 60]], [1, 0], False),
                                  ([[10, 10], [50, 60], [70, 20]], [1, 0, 1], False),
                                  ([[10, 10], [50, 60]], [1, 0], False)):  # undo
        assert client.post(url, json=dict(points=points, labels=labels, reset=reset)).status_code == 200
    assert [len(c) for c, _ in stats['predict']] == [1, 2, 3, 2]  # one decoder pass per request
    assert stats['chain_errors'] == []
    assert stats['set_image'] == [((160, 224, 3), 256)]
    embed = client.post(f'/api/images/{image_id}/embed', json=dict(target_size=512)).json()
    assert embed['cached'] is False
    assert client.post(f'/api/images/{image_id}/embed', json={}).json()['cached'] is True
    assert client.get(f'/api/images/{image_id}').json()['cached_target_sizes'] == [256, 512]
    # A new object after reset replays nothing stale; another size starts its own chain.
    client.post(url, json=dict(points=[[5, 5]], labels=[1], reset=True))
    client.post(url, json=dict(points=[[10, 10], [50, 60]], labels=[1, 0], target_size=512))
    assert [len(c) for c, _ in stats['predict'][4:]] == [1, 1, 2]
    assert stats['chain_errors'] == []
    assert len(stats['set_image']) == 2


def test_requests_on_one_image_are_serialized(tmp_path, scene):
    factory, stats = disk_factory(delay=0.05)
    client = make_client(tmp_path, factory)
    image_id = upload(client, scene[0])['image_id']
    answers = {}

    def click(n):
        points = [[10 + 20 * k, 30] for k in range(n)]
        answers[n] = client.post(f'/api/images/{image_id}/predict',
                                 json=dict(points=points, labels=[1] * n))

    threads = [threading.Thread(target=click, args=(n,)) for n in (1, 2, 3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(a.status_code == 200 for a in answers.values())
    assert len(stats['set_image']) == 1  # computed once although four requests arrived at once
    assert stats['chain_errors'] == [] and stats['max_active'] == 1
    yy, xx = np.mgrid[:160, :224]
    for n, answer in answers.items():  # each answer is the mask of its own clicks
        expected = np.zeros((160, 224), bool)
        for k in range(n):
            expected |= (xx - 10 - 20 * k) ** 2 + (yy - 30) ** 2 <= 12 ** 2
        np.testing.assert_array_equal(decode(answer.json()['rle']), expected)


def test_out_of_memory_is_503_and_the_server_keeps_serving(tmp_path, scene):
    factory, _ = disk_factory(oom=[True])
    client = make_client(tmp_path, factory)
    image_id = upload(client, scene[0])['image_id']
    url = f'/api/images/{image_id}/predict'
    response = client.post(url, json=dict(points=[[10, 10]], labels=[1]))
    assert response.status_code == 503
    assert 'out of memory' in response.json()['detail']
    assert client.get('/api/health').json()['status'] == 'ok'
    assert client.post(url, json=dict(points=[[10, 10]], labels=[1])).status_code == 200


# ---------------------------------------------------------------------- saving
def read_png(path):
    return np.asarray(Image.open(path))


def test_two_objects_saved_then_restart_keeps_them_and_nothing_is_overwritten(tmp_path, scene):
    image = scene[0]
    factory, _ = disk_factory(radius=9)
    client = make_client(tmp_path, factory)
    image_id = upload(client, image, 'my scene.png')['image_id']
    url = f'/api/images/{image_id}/objects'
    first = client.post(url, json=dict(points=[[40, 50]], labels=[1], label='star')).json()
    second = client.post(url, json=dict(points=[[150, 100], [155, 100]], labels=[1, 0])).json()
    out = tmp_path / 'out'
    assert (first['object_id'], second['object_id']) == (1, 2)
    assert first['mask_file'] == 'my_scene/1.png' and second['label'] == ''
    yy, xx = np.mgrid[:160, :224]
    disk1 = (xx - 40) ** 2 + (yy - 50) ** 2 <= 81
    disk2 = ((xx - 150) ** 2 + (yy - 100) ** 2 <= 81) & ~((xx - 155) ** 2 + (yy - 100) ** 2 <= 81)
    for obj, disk in ((first, disk1), (second, disk2)):
        png = read_png(out / obj['mask_file'])
        assert png.dtype == np.uint8 and png.shape == (160, 224)
        assert set(np.unique(png)) == {0, 255}
        np.testing.assert_array_equal(png == 255, disk)
    coco = json.loads((out / 'my_scene.json').read_text())
    assert coco['images'] == [dict(id=1, file_name='my_scene.png', width=224, height=160)]
    assert [c['name'] for c in coco['categories']] == ['star', 'object']
    for annotation, disk in zip(coco['annotations'], (disk1, disk2)):
        np.testing.assert_array_equal(decode(annotation['segmentation']), disk)
        assert annotation['area'] == disk.sum() and annotation['bbox'] == numpy_bbox(disk)
    listed = client.get(url).json()['objects']
    assert [o['object_id'] for o in listed] == [1, 2] and listed[0]['label'] == 'star'
    before = {p: p.read_bytes() for p in out.rglob('*') if p.is_file()}
    (out / 'my_scene' / '3.png').write_bytes(b'a file someone put there')

    # Restart: a new app on the same folder, the same image uploaded again.
    factory, _ = disk_factory(radius=9)
    client = make_client(tmp_path, factory)
    assert upload(client, image, 'my scene.png')['image_id'] == image_id  # content-addressed id
    assert [o['object_id'] for o in client.get(url).json()['objects']] == [1, 2]
    third = client.post(url, json=dict(points=[[100, 20]], labels=[1], label='star')).json()
    assert third['object_id'] == 4  # 3.png exists: skipped, not overwritten
    assert (out / 'my_scene' / '3.png').read_bytes() == b'a file someone put there'
    for path, data in before.items():
        if path.suffix == '.png':
            assert path.read_bytes() == data
    coco = json.loads((out / 'my_scene.json').read_text())
    assert [a['id'] for a in coco['annotations']] == [1, 2, 4]
    assert [a['category_id'] for a in coco['annotations']] == [1, 2, 1]
    assert not list(out.rglob('*.part'))  # no temporary files left


def test_unreadable_json_is_reported_not_replaced(tmp_path, scene):
    factory, _ = disk_factory()
    client = make_client(tmp_path, factory)
    image_id = upload(client, scene[0])['image_id']
    path = tmp_path / 'out' / 'scene.json'
    path.write_text('{"images": [], "annot')
    response = client.post(f'/api/images/{image_id}/objects', json=dict(points=[[5, 5]], labels=[1]))
    assert response.status_code == 409 and 'scene.json' in response.json()['detail']
    assert client.get(f'/api/images/{image_id}/objects').status_code == 409
    assert path.read_text() == '{"images": [], "annot'
    # An image of another size under the same name does not mix into that file either.
    path.unlink()
    client.post(f'/api/images/{image_id}/objects', json=dict(points=[[5, 5]], labels=[1]))
    other = upload(client, np.zeros((50, 60, 3), np.uint8), 'scene.png')['image_id']
    response = client.post(f'/api/images/{other}/objects', json=dict(points=[[5, 5]], labels=[1]))
    assert response.status_code == 409 and '224x160' in response.json()['detail']


# ---------------------------------------------------------------------- images and bad input
def test_folder_listing_preview_and_page(tmp_path, scene):
    folder = tmp_path / 'images'
    folder.mkdir()
    Image.fromarray(scene[0]).save(folder / 'a.png')
    big = np.zeros((300, 1000, 3), np.uint8)
    big[:, 500:] = 200
    Image.fromarray(big).save(folder / 'b.jpg')
    (folder / 'broken.png').write_bytes(b'not a png')
    (folder / 'notes.txt').write_text('ignored')
    factory, _ = disk_factory()
    client = make_client(tmp_path, factory, images_dir=folder, preview_max_side=400)
    images = client.get('/api/images').json()['images']
    assert [i['name'] for i in images] == ['a.png', 'b.jpg', 'broken.png']
    assert 'not an image' in images[2]['error']
    b = images[1]
    assert (b['width'], b['height'], b['source']) == (1000, 300, 'folder')
    info = client.get(f'/api/images/{b["image_id"]}').json()
    assert (info['preview_width'], info['preview_height']) == (400, 120)
    preview = client.get(f'/api/images/{b["image_id"]}/preview')
    assert preview.headers['content-type'] == 'image/jpeg'
    shown = np.asarray(Image.open(BytesIO(preview.content)))
    assert shown.shape == (120, 400, 3)
    assert shown[:, :190].max() < 20 and shown[:, 210:].min() > 180  # the halves stay in place
    answer = client.post(f'/api/images/{b["image_id"]}/predict', json=dict(points=[[999, 299]], labels=[1]))
    assert answer.status_code == 200 and answer.json()['rle']['size'] == [300, 1000]
    page = client.get('/')
    assert page.status_code == 200 and 'mmhrsam annotate' in page.text
    assert client.get('/static/app.js').status_code == 200


def test_bad_input_gets_clear_errors(tmp_path, scene):
    factory, _ = disk_factory()
    client = make_client(tmp_path, factory, max_pixels=100 * 100)
    small = np.full((40, 50, 3), 128, np.uint8)
    image_id = upload(client, small)['image_id']
    predict = f'/api/images/{image_id}/predict'

    def post_file(name, data):
        return client.post('/api/images', files={'file': (name, data, 'application/octet-stream')})

    cases = [
        (post_file('notes.png', b'hello, not an image'), 415, 'not an image'),
        (post_file('empty.png', b''), 415, 'empty'),
        (post_file('cut.png', png_bytes(scene[0][:60, :80])[:3000]), 400, 'truncated'),
        (post_file('cut.jpg', cv2.imencode('.jpg', scene[0][:60, :80])[1].tobytes()[:1500]), 400,
         'truncated'),
        (post_file('big.png', png_bytes(np.zeros((101, 100, 3), np.uint8))), 413, '10,100 pixels'),
        (client.post('/api/images', files={'other': ('a.png', b'x')}), 422, 'file'),
        (client.post(predict, json=dict(points=[[50, 10]], labels=[1])), 422, 'outside'),
        (client.post(predict, json=dict(points=[[-1, 10]], labels=[1])), 422, 'outside'),
        (client.post(predict, json=dict(points=[[5, 10]], labels=[2])), 422, 'labels must be 1'),
        (client.post(predict, json=dict(points=[[5, 10]], labels=[1, 0])), 422, 'one label per'),
        (client.post(predict, json=dict(points=[], labels=[])), 422, 'at least one click'),
        (client.post(predict, json=dict(points=[[5, 10, 3]], labels=[1])), 422, 'points'),
        (client.post(predict, json=dict(points=[[5, 10]], labels=[1], target_size=1000)), 422,
         'target_size must be one of'),
        (client.post(predict, content=b'{not json', headers={'content-type': 'application/json'}),
         422, 'json'),
        (client.post('/api/images/u0000/predict', json=dict(points=[[5, 10]], labels=[1])), 404,
         'unknown image id'),
        (client.get('/api/images/nope'), 404, 'unknown image id'),
        (client.get('/api/images/nope/preview'), 404, 'unknown image id'),
        (client.get('/api/images/nope/objects'), 404, 'unknown image id'),
        (client.post('/api/images/nope/objects', json=dict(points=[[5, 10]], labels=[1])), 404,
         'unknown image id'),
        (client.post(f'/api/images/{image_id}/objects', json=dict(points=[[5, 99]], labels=[1])),
         422, 'outside'),
    ]
    for response, status, text in cases:
        assert response.status_code == status, (response.status_code, response.text)
        assert text.lower() in json.dumps(response.json()['detail']).lower(), response.text
    assert client.post(predict, json=dict(points=[[49, 39]], labels=[1])).status_code == 200
    assert not list((tmp_path / 'out').glob('*.json'))  # nothing was saved by bad requests


def test_upload_of_an_8192_square_image(tmp_path):
    factory, stats = disk_factory(radius=40)
    client = make_client(tmp_path, factory, max_pixels=8192 * 8192)
    image = np.zeros((8192, 8192, 3), np.uint8)
    image[4000:6000, 1000:7000] = (200, 30, 30)
    data = cv2.imencode('.jpg', image)[1].tobytes()  # JPEG: much faster to write and read than PNG
    response = client.post('/api/images', files={'file': ('huge.jpg', data, 'image/jpeg')})
    assert response.status_code == 200, response.text
    info = response.json()
    assert (info['width'], info['height']) == (8192, 8192)
    assert client.get(f'/api/images/{info["image_id"]}').json()['preview_width'] == 2048
    saved = client.post(f'/api/images/{info["image_id"]}/objects',
                        json=dict(points=[[8000, 5000]], labels=[1])).json()
    png = read_png(tmp_path / 'out' / saved['mask_file'])
    assert png.shape == (8192, 8192) and png[5000, 8000] == 255 and png[5000, 8100] == 0
    assert saved['area'] == int((png == 255).sum())
    assert stats['set_image'] == [((8192, 8192, 3), 256)]
