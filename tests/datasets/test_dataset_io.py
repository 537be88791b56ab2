"""Robust image / mask reading and folder pairing."""
import cv2
import numpy as np
import pytest
from PIL import Image

from dataset_fixtures import random_rgb, write_image
from mmhrsam.datasets.io import (BadSampleError, binarize_mask, pair_images_and_masks,
                                 read_image, read_mask)


def test_rgb_png_is_read_in_rgb_order(tmp_path):
    rgb = random_rgb(9, 7)
    out = read_image(write_image(tmp_path / 'x.png', rgb))
    assert out.dtype == np.uint8 and out.shape == (9, 7, 3)
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize('kind', ['gray', 'rgba', 'uint16', 'gray_jpg'])
def test_gray_rgba_and_16bit_images_become_rgb_uint8(tmp_path, kind):
    rgb = random_rgb(8, 6)
    if kind == 'gray':
        path, expected = write_image(tmp_path / 'g.png', rgb[..., 0]), np.repeat(rgb[..., :1], 3, 2)
    elif kind == 'rgba':
        rgba = np.concatenate([rgb, np.full((8, 6, 1), 7, np.uint8)], -1)
        path, expected = write_image(tmp_path / 'a.png', rgba), rgb
    elif kind == 'uint16':
        path = write_image(tmp_path / 'w.png', rgb.astype(np.uint16) * 257)  # 255 -> 65535
        expected = rgb
    else:
        gray = np.full((8, 6), 100, np.uint8)
        path, expected = write_image(tmp_path / 'g.jpg', gray), np.full((8, 6, 3), 100, np.uint8)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (8, 6, 3)
    np.testing.assert_array_equal(out, expected)


def test_gif_falls_back_to_pil(tmp_path):
    rgb = np.zeros((5, 4, 3), np.uint8)
    rgb[:, 2:] = (255, 0, 0)
    Image.fromarray(rgb).save(tmp_path / 'x.gif')
    np.testing.assert_array_equal(read_image(tmp_path / 'x.gif'), rgb)


@pytest.mark.parametrize('suffix', ['.jpg', '.png'])
def test_truncated_file_raises_naming_it(tmp_path, suffix):
    path = write_image(tmp_path / f'broken{suffix}', random_rgb(64, 64))
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match=f'broken\\{suffix}'):
        read_image(path)


def test_jpeg_with_trailing_bytes_after_eoi_is_fine(tmp_path):
    path = write_image(tmp_path / 'x.jpg', np.full((16, 16, 3), 90, np.uint8))
    path.write_bytes(path.read_bytes() + b'trailing-junk')
    assert read_image(path).mean() == pytest.approx(90, abs=2)


def test_missing_and_garbage_files_raise_bad_sample_error(tmp_path):
    with pytest.raises(BadSampleError, match='nope.jpg'):
        read_image(tmp_path / 'nope.jpg')
    (tmp_path / 'junk.png').write_bytes(b'not an image at all')
    with pytest.raises(BadSampleError, match='junk.png'):
        read_image(tmp_path / 'junk.png')
    with pytest.raises(BadSampleError, match='junk.png'):
        read_mask(tmp_path / 'junk.png')


def test_read_mask_palette_gray_palette_and_colour(tmp_path):
    labels = np.array([[0, 1], [2, 1]], np.uint8)
    im = Image.fromarray(labels, 'P')
    im.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * 759)  # DAVIS/VOC-like colours
    im.save(tmp_path / 'p.png')
    np.testing.assert_array_equal(read_mask(tmp_path / 'p.png'), labels)  # indices
    gray = np.array([[0, 128], [255, 128]], np.uint8)
    cv2.imwrite(str(tmp_path / 'g.bmp'), gray)  # 8-bit BMP: a gray palette image
    np.testing.assert_array_equal(read_mask(tmp_path / 'g.bmp'), gray)  # gray values
    colour = np.zeros((2, 2, 3), np.uint8)
    colour[0, 1] = (0, 0, 200)
    cv2.imwrite(str(tmp_path / 'c.png'), colour)
    np.testing.assert_array_equal(read_mask(tmp_path / 'c.png'), [[0, 200], [0, 0]])


def test_binarize_threshold_and_ignore():
    raw = np.array([0, 1, 127, 128, 129, 255])
    np.testing.assert_array_equal(binarize_mask(raw, 0), [0, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(binarize_mask(raw, 128, (128,)), [0, 0, 0, 255, 1, 1])


def test_pairing_same_stem_indexed_and_shared_folder(tmp_path):
    for name in ('a.jpg', 'sub/b.JPG', 'c.jpg'):
        write_image(tmp_path / 'im' / name, random_rgb(4, 4))
    for name in ('a.png', 'sub/b.png', 'a_0.png', 'a_1.png', 'a_10.png'):
        write_image(tmp_path / 'gt' / name, np.zeros((4, 4), np.uint8))
    pairs = pair_images_and_masks(tmp_path / 'im', tmp_path / 'gt', '.jpg', '.png', recursive=True)
    assert [(p.name, [(k, m.name) for k, m in ms], s) for p, ms, s in pairs] == [
        ('a.jpg', [('0', 'a.png')], 'a'), ('b.JPG', [('0', 'b.png')], 'sub/b')]
    pairs = pair_images_and_masks(tmp_path / 'im', tmp_path / 'gt', '.jpg', '.png', 'indexed')
    assert [[k for k, _ in ms] for _, ms, _ in pairs] == [['0', '1', '10']]
    with pytest.raises(ValueError, match='must differ'):
        pair_images_and_masks(tmp_path / 'gt', tmp_path / 'gt', '.png', '.png')
    write_image(tmp_path / 'im' / 'a.png', random_rgb(4, 4))
    with pytest.raises(ValueError, match="share the stem 'a'"):
        pair_images_and_masks(tmp_path / 'im', tmp_path / 'gt', ('.jpg', '.png'), '.png')
    with pytest.raises(FileNotFoundError, match='missing'):
        pair_images_and_masks(tmp_path / 'missing', tmp_path / 'gt', '.jpg', '.png')
