"""End to end in a real headless browser: Debian's chromium driven by Selenium.

The server runs (uvicorn, in a thread, on a free loopback port) with a deterministic
stand-in predictor injected through the app factory, :class:`LabelMapPredictor`: it
answers with the scene's ground-truth object under the click, so the test knows which
pixels must be foreground (a random-weight model could predict anything). The scene is
larger than the preview the page receives, so the clicks go through the page's
preview-to-original mapping, and a click mapped to the wrong place selects another object
or the background. Skipped when chromium, chromedriver or selenium are missing
(``apt-get install chromium chromium-driver``, ``pip install -r requirements/app.txt``).
"""
import json
import shutil
import socket
import tempfile
import threading
import time

import cv2
import numpy as np
import pytest
from PIL import Image

pytest.importorskip('fastapi')
selenium = pytest.importorskip('selenium', reason='selenium is not installed (requirements/app.txt)')
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
CHROMEDRIVER = shutil.which('chromedriver')
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason='needs chromium and chromedriver (apt-get install chromium chromium-driver)')

from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from annotation_helpers import label_map_factory, synthetic_scene  # noqa: E402

SIZE = 640  # scene side; the page gets a 320 px preview (scale 2)
PREVIEW = 320
SEED = 3  # a scene with two large objects


@pytest.fixture
def scene():
    """A two-object scene of the synthetic dataset: image, masks (2, H, W), label map."""
    image, masks = synthetic_scene(SIZE, seed=SEED)
    assert len(masks) == 2
    label_map = (masks * np.arange(1, 3, dtype=np.uint8)[:, None, None]).max(0)
    return image, masks, label_map


@pytest.fixture
def server(tmp_path, scene):
    """(base url, output folder) of a running server with the ground-truth stand-in."""
    import uvicorn

    from mmhrsam.apis.annotation import AppOptions, create_app
    factory, stats = label_map_factory(scene[2])
    app = create_app(factory, AppOptions(
        out_dir=tmp_path / 'out', target_sizes=(1024, 2048), default_target_size=1024,
        preview_max_side=PREVIEW, model='stand-in predictor (ground-truth objects)',
        warning='Test server: a stand-in predictor answers with the ground-truth object.'))
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(app, host='127.0.0.1', port=port, log_level='warning'))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not uv.started:
        assert time.time() < deadline and thread.is_alive(), 'server did not start'
        time.sleep(0.05)
    yield f'http://127.0.0.1:{port}', tmp_path / 'out'
    assert stats['chain_errors'] == []
    uv.should_exit = True
    thread.join(10)


@pytest.fixture
def browser(tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix='chromium-profile-', dir=tmp_path)
    for arg in ('--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                '--disable-background-networking', '--disable-component-update', '--disable-sync',
                '--disable-dev-shm-usage', f'--user-data-dir={profile}', '--window-size=1280,900'):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER),
                              options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def wait_idle(driver, timeout=30):
    WebDriverWait(driver, timeout).until(
        lambda d: d.find_element(By.TAG_NAME, 'body').get_attribute('data-busy') == '0')


def click_pixel(driver, canvas, x, y, right=False):
    """Click the canvas where original pixel (x, y) is shown (offsets from the centre)."""
    rect = driver.execute_script('return arguments[0].getBoundingClientRect().toJSON();', canvas)
    dx = round((x + 0.5) * rect['width'] / SIZE - rect['width'] / 2)
    dy = round((y + 0.5) * rect['height'] / SIZE - rect['height'] / 2)
    chain = ActionChains(driver).move_to_element_with_offset(canvas, dx, dy)
    (chain.context_click() if right else chain.click()).perform()
    return rect['width'] / SIZE  # CSS pixels per original pixel


def deepest_pixel(mask):
    """(x, y) of the pixel of ``mask`` farthest from its boundary, and that distance."""
    depth = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return int(x), int(y), float(depth[y, x])


def saved_object(out, annotation):
    return np.asarray(Image.open(out / 'synthetic_scene' / f'{annotation["id"]}.png'))


def upload(browser, url, path):
    """Open the page, upload the scene at ``path``; returns the canvas (the preview's size)."""
    browser.get(url)
    WebDriverWait(browser, 20).until(lambda d: d.find_element(By.ID, 'target-size').text)
    assert 'stand-in predictor' in browser.find_element(By.ID, 'warning').text
    browser.find_element(By.ID, 'upload').send_keys(str(path))
    WebDriverWait(browser, 30).until(
        lambda d: 'Click on the image' in d.find_element(By.ID, 'message').text)
    canvas = browser.find_element(By.ID, 'canvas')
    assert (canvas.get_attribute('width'), canvas.get_attribute('height')) == (str(PREVIEW), str(PREVIEW))
    return canvas


def save_first_object(browser, canvas, click, background):
    """Left click inside, right click on the background, undo the right click, save with a
    label; returns CSS pixels per original pixel."""
    tx, ty, _ = click
    scale = click_pixel(browser, canvas, tx, ty)
    wait_idle(browser)
    click_pixel(browser, canvas, *background[:2], right=True)
    wait_idle(browser)
    assert browser.find_element(By.ID, 'click-count').text == '2 clicks'
    browser.find_element(By.ID, 'undo').click()
    wait_idle(browser)
    assert browser.find_element(By.ID, 'click-count').text == '1 click'
    browser.find_element(By.ID, 'label').send_keys('first')
    browser.find_element(By.ID, 'save').click()
    WebDriverWait(browser, 30).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, '#objects li')) == 1)
    assert browser.find_element(By.ID, 'click-count').text == '0 clicks'
    return scale


def save_second_object(browser, canvas, click, image, mask, tmp_path):
    """One click; the overlay is drawn (the canvas pixel at the click turns blue),
    screenshot, then saved without a label."""
    tx, ty, _ = click
    click_pixel(browser, canvas, tx, ty)
    wait_idle(browser)
    depth = cv2.distanceTransform(mask, cv2.DIST_L2, 5)
    ys, xs = np.nonzero(depth > 4)  # inside, away from the click's marker: the farthest such pixel
    k = int(np.argmax((xs - tx) ** 2 + (ys - ty) ** 2))
    px, py = int(xs[k]) // 2, int(ys[k]) // 2  # the preview pixel showing it
    rgba = browser.execute_script(
        'return Array.from(arguments[0].getContext("2d").getImageData(arguments[1], arguments[2], '
        '1, 1).data);', canvas, px, py)
    plain = image[2 * py + 1, 2 * px + 1].astype(int)
    assert rgba[2] - rgba[0] > plain[2] - plain[0] + 40, (rgba, plain)
    shot = tmp_path / 'annotate_screenshot.png'
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10000
    browser.find_element(By.ID, 'save').click()
    WebDriverWait(browser, 30).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, '#objects li')) == 2)
    assert 'first' in browser.find_element(By.ID, 'objects').text


def check_saved_objects(out, clicks, masks, scale):
    """The COCO file and PNGs: labels, the clicked points, and each PNG the object aimed at."""
    coco = json.loads((out / 'synthetic_scene.json').read_text())
    assert [a['label'] for a in coco['annotations']] == ['first', '']
    assert [a['labels'] for a in coco['annotations']] == [[1], [1]]
    for annotation, (tx, ty, _), target in zip(coco['annotations'], clicks, masks):
        (sx, sy), = annotation['points']
        # The page sent the pixel under the mouse: within a CSS pixel of the one aimed at.
        assert abs(sx - tx) <= 1 / scale + 1 and abs(sy - ty) <= 1 / scale + 1
        png = saved_object(out, annotation)
        assert png.shape == (SIZE, SIZE)
        assert png[int(sy), int(sx)] == 255 and png[ty, tx] == 255  # clicked pixel: foreground
        np.testing.assert_array_equal(png == 255, target.astype(bool))  # the object aimed at


def check_rle_decoder(browser, masks):
    """The page's RLE decoder against pycocotools, on the scene's own (intricate) object masks,
    at full size and sampled down to the preview as the overlay is drawn."""
    from pycocotools import mask as mask_utils
    for target in masks:
        rle = mask_utils.encode(np.asfortranarray(target))
        rle = dict(size=rle['size'], counts=rle['counts'].decode())
        for side in (SIZE, PREVIEW):
            found = browser.execute_script(
                'const m = rleToPreview(arguments[0], arguments[1], arguments[1]); const out = [];'
                'm.forEach((v, i) => { if (v) out.push(i); }); return out;', rle, side)
            step = SIZE // side  # nearest sample of pixel centres: rows/cols step/2, 3 step/2, ...
            expected = np.flatnonzero(target[step // 2::step, step // 2::step])
            np.testing.assert_array_equal(found, expected)


def test_click_and_save_in_a_real_browser(server, browser, scene, tmp_path):
    url, out = server
    image, masks, _ = scene
    path = tmp_path / 'synthetic_scene.png'
    Image.fromarray(image).save(path)
    clicks = [deepest_pixel(m) for m in masks]  # far inside each object
    assert all(depth > 8 for _, _, depth in clicks)
    background = deepest_pixel(masks.max(0) == 0)

    canvas = upload(browser, url, path)
    scale = save_first_object(browser, canvas, clicks[0], background)
    save_second_object(browser, canvas, clicks[1], image, masks[1], tmp_path)
    check_saved_objects(out, clicks, masks, scale)
    check_rle_decoder(browser, masks)
