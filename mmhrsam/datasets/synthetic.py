"""Procedural high-resolution scenes: interactive-segmentation data without downloads.

Each scene is a textured background (smooth two-colour gradient, low-frequency colour
blobs, fine grain) with up to ``max_objects`` objects drawn in turn, each a distinct
colour with its own texture (diagonal stripes, checker or grain). The shapes stress
what high-resolution models must get right:

* thin structures: ``wire`` (a 1-3 px smooth curve), ``tree`` (branches thinning down to
  1 px), ``net`` (a frame filled with a 1-3 px grid: thin *and* many holes);
* holes: ``ring`` (an elliptic annulus), ``frame`` (a rotated rectangle with a
  rectangular hole), ``perforated`` (a blob with punched holes);
* fine boundaries: ``wavy`` (a blob whose radius carries six harmonics of frequencies up
  to 52), ``star`` (up to 24 jittered spikes).

Later objects occlude earlier ones, so instance masks never overlap; objects left with
fewer than ``min_object_pixels`` visible pixels are dropped (painted as background), but
the largest object is always kept.

Determinism: scene ``index`` of ``seed`` uses ``np.random.SeedSequence([seed, index])``
(split into a geometry and a texture generator), so the same seed and index give
bit-identical images and masks in any process, worker or order. Geometry alone (what test
mode needs to enumerate instances) is drawn without rendering.

Speed (numpy + OpenCV on this repository's 2-core development CPU, image and masks,
steady state): about 0.02 s for a 1024² scene and 0.1-0.2 s for a 4096² scene (the
first 4096² scene of a process takes up to 0.5 s while fresh memory is paged in).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from mmhrsam.registry import DATASETS
from .base import BaseInteractiveDataset
from .io import progress

#: (y0, y1, x0, x1) box of an object in the image.
Box = Tuple[int, int, int, int]


@dataclass
class SyntheticScene:
    """One generated scene.

    Attributes:
        labels (np.ndarray): (H, W) uint8 label map, 0 background, k object k.
        ids (list[int]): labels of the kept objects, in drawing order.
        boxes (dict[int, Box]): box of each kept object.
        image (np.ndarray | None): (H, W, 3) uint8 RGB (None when only geometry was drawn).
    """

    labels: np.ndarray
    ids: List[int]
    boxes: Dict[int, Box]
    image: Optional[np.ndarray] = None

    def masks(self, ids: Optional[Sequence[int]] = None) -> np.ndarray:
        """(N, H, W) uint8 0/1 masks of ``ids`` (all kept objects by default)."""
        ids = self.ids if ids is None else list(ids)
        masks = np.zeros((len(ids),) + self.labels.shape, np.uint8)  # calloc: lazy zeros
        for i, k in enumerate(ids):
            y0, y1, x0, x1 = self.boxes[k]
            np.equal(self.labels[y0:y1, x0:x1], k, out=masks[i, y0:y1, x0:x1], casting='unsafe')
        return masks


# ---------------------------------------------------------------------- shapes
def _canvas(points: Sequence[np.ndarray], pad: int
            ) -> Tuple[np.ndarray, List[np.ndarray], int, int]:
    """A zero canvas covering float (x, y) point arrays, and the points in its frame."""
    allp = np.concatenate([p.reshape(-1, 2) for p in points])
    x0, y0 = np.floor(allp.min(0)).astype(int) - pad
    x1, y1 = np.ceil(allp.max(0)).astype(int) + pad
    canvas = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    local = [np.round(p - (x0, y0)).astype(np.int32) for p in points]
    return canvas, local, int(x0), int(y0)


def _radial_polygon(centre, radii: np.ndarray, theta: np.ndarray, aspect: float,
                    angle: float) -> np.ndarray:
    """(N, 2) float polygon of radius ``radii`` at angles ``theta``, stretched and rotated."""
    x, y = radii * np.cos(theta), radii * np.sin(theta) * aspect
    c, s = math.cos(angle), math.sin(angle)
    return np.stack([c * x - s * y, s * x + c * y], 1) + centre


def _wavy_outline(rng, centre, radius: float) -> np.ndarray:
    """A closed outline whose radius carries several harmonics (fine, fractal-ish edge)."""
    n = max(256, int(2 * math.pi * radius / 2))  # a vertex every ~2 px
    theta = np.linspace(0, 2 * math.pi, n, endpoint=False)
    r = np.ones(n)
    for j in range(1, 7):
        freq = int(rng.integers(2, 8 * j + 5))
        r += rng.uniform(0.1, 0.3) / j ** 0.8 * np.sin(freq * theta + rng.uniform(0, 2 * math.pi))
    r = radius * np.clip(r, 0.15, None)
    return _radial_polygon(centre, r, theta, rng.uniform(0.6, 1.0), rng.uniform(0, math.pi))


def _fill_holes(canvas: np.ndarray) -> np.ndarray:
    """Fill background regions not 4-connected to the canvas border (the canvas has a
    padding of background): fillPoly leaves pinholes where a dense, rounded outline
    crosses itself."""
    outside = canvas.copy()
    cv2.floodFill(outside, np.zeros((canvas.shape[0] + 2, canvas.shape[1] + 2), np.uint8),
                  (0, 0), 2, flags=4)
    canvas[outside == 0] = 1
    return canvas


def _filled_outline(rng, centre, radius) -> Tuple[np.ndarray, int, int]:
    canvas, (poly,), x0, y0 = _canvas([_wavy_outline(rng, centre, radius)], 2)
    cv2.fillPoly(canvas, [poly], 1)
    return _fill_holes(canvas), x0, y0


def shape_wavy(rng, centre, radius, scale):
    """A solid blob with a fine, wavy outline."""
    return _filled_outline(rng, centre, radius)


def shape_star(rng, centre, radius, scale):
    """A star with 5-24 jittered spikes."""
    spikes = int(rng.integers(5, 25))
    theta = np.linspace(0, 2 * math.pi, 2 * spikes, endpoint=False)
    r = np.where(np.arange(2 * spikes) % 2 == 0, 1.0, rng.uniform(0.3, 0.7))
    r = radius * r * rng.uniform(0.85, 1.15, 2 * spikes)
    poly = _radial_polygon(centre, r, theta, rng.uniform(0.7, 1.0), rng.uniform(0, math.pi))
    canvas, (poly,), x0, y0 = _canvas([poly], 2)
    cv2.fillPoly(canvas, [poly], 1)
    return _fill_holes(canvas), x0, y0


def shape_ring(rng, centre, radius, scale):
    """An elliptic annulus: one hole."""
    canvas, _, x0, y0 = _canvas([np.stack([centre - radius, centre + radius])], 3)
    c = (int(round(centre[0])) - x0, int(round(centre[1])) - y0)
    outer = (max(2, int(radius)), max(2, int(radius * rng.uniform(0.5, 1.0))))
    frac = rng.uniform(0.45, 0.85)
    inner = (max(1, int(outer[0] * frac)), max(1, int(outer[1] * frac)))
    angle = rng.uniform(0, 180)
    cv2.ellipse(canvas, c, outer, angle, 0, 360, 1, -1)
    cv2.ellipse(canvas, c, inner, angle, 0, 360, 0, -1)
    return canvas, x0, y0


def shape_frame(rng, centre, radius, scale):
    """A rotated rectangle with a rectangular hole."""
    size = (2 * radius * rng.uniform(0.6, 1.0), 2 * radius * rng.uniform(0.4, 1.0))
    angle, frac = rng.uniform(0, 180), rng.uniform(0.5, 0.85)
    outer = cv2.boxPoints((tuple(centre), size, angle))
    inner = cv2.boxPoints((tuple(centre), (size[0] * frac, size[1] * frac), angle))
    canvas, (outer, inner), x0, y0 = _canvas([outer, inner], 2)
    cv2.fillPoly(canvas, [outer], 1)
    cv2.fillPoly(canvas, [inner], 0)
    return canvas, x0, y0


def shape_perforated(rng, centre, radius, scale):
    """A wavy blob with 3-12 punched round holes."""
    canvas, x0, y0 = _filled_outline(rng, centre, radius)
    for _ in range(int(rng.integers(3, 13))):
        dist, ang = radius * rng.uniform(0, 0.5), rng.uniform(0, 2 * math.pi)
        hole = (int(centre[0] + dist * math.cos(ang)) - x0,
                int(centre[1] + dist * math.sin(ang)) - y0)
        cv2.circle(canvas, hole, max(1, int(radius * rng.uniform(0.04, 0.14))), 0, -1)
    return canvas, x0, y0


def shape_wire(rng, centre, radius, scale):
    """A smooth open curve 1-3 px thick, 0.2-0.7 image sides long."""
    length = scale * rng.uniform(0.2, 0.7)
    a = rng.uniform(0, 2 * math.pi)
    t = np.linspace(-0.5, 0.5, int(length / 2) + 2)[:, None]  # (n, 1)
    offset = sum(length * rng.uniform(0.02, 0.12) / j
                 * np.sin(2 * math.pi * rng.uniform(0.5, 3) * t + rng.uniform(0, 2 * math.pi))
                 for j in range(1, 4))
    points = centre + t * length * np.array([math.cos(a), math.sin(a)]) \
        + offset * np.array([-math.sin(a), math.cos(a)])
    canvas, (points,), x0, y0 = _canvas([points], 4)
    cv2.polylines(canvas, [points], False, 1, int(rng.integers(1, 4)), cv2.LINE_8)
    return canvas, x0, y0


def shape_tree(rng, centre, radius, scale):
    """Branches from a 3-7 px trunk, each level thinner, down to 1 px twigs."""
    segments = []
    stack = [(np.asarray(centre, float), rng.uniform(0, 2 * math.pi),
              radius * rng.uniform(0.5, 0.8), int(rng.integers(3, 8)), 0)]
    depth = int(rng.integers(4, 7))
    while stack and len(segments) < 400:
        start, angle, length, thick, level = stack.pop()
        end = start + length * np.array([math.cos(angle), math.sin(angle)])
        segments.append((start, end, thick))
        if level < depth:
            for _ in range(int(rng.integers(2, 4))):
                stack.append((end, angle + rng.uniform(-0.8, 0.8), length * rng.uniform(0.55, 0.8),
                              max(1, thick - 1), level + 1))
    canvas, points, x0, y0 = _canvas([np.stack([a, b]) for a, b, _ in segments], 8)
    for (p, q), (_, _, thick) in zip(points, segments):
        cv2.line(canvas, tuple(map(int, p)), tuple(map(int, q)), 1, thick, cv2.LINE_8)
    return canvas, x0, y0


def shape_net(rng, centre, radius, scale):
    """A rotated square frame holding a 1-3 px grid (a fence): thin bars, many holes."""
    half = radius * rng.uniform(0.6, 1.0)
    spacing = float(rng.integers(6, 31))
    thick = int(rng.integers(1, 4))
    ticks = np.arange(-half, half + 1e-6, spacing)
    ends = [((u, -half), (u, half)) for u in ticks] + [((-half, v), (half, v)) for v in ticks]
    angle = rng.uniform(0, math.pi)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    lines = [np.array(e) @ rot.T + centre for e in ends]  # each (2, 2) (x, y)
    border = np.array([(-half, -half), (half, -half), (half, half), (-half, half)]) @ rot.T + centre
    canvas, local, x0, y0 = _canvas(lines + [border], thick + 3)
    for p, q in local[:-1]:
        cv2.line(canvas, tuple(map(int, p)), tuple(map(int, q)), 1, thick, cv2.LINE_8)
    cv2.polylines(canvas, [local[-1]], True, 1, thick + 1, cv2.LINE_8)
    return canvas, x0, y0


#: Shape name -> ``f(rng, centre (x, y), radius, scale) -> (canvas, x0, y0)``: a uint8 0/1
#: canvas and the image position of its top-left pixel (``scale``: the image's short side).
SHAPES: Dict[str, Callable] = dict(wavy=shape_wavy, star=shape_star, ring=shape_ring,
                                   frame=shape_frame, perforated=shape_perforated,
                                   wire=shape_wire, tree=shape_tree, net=shape_net)
SHAPE_NAMES = tuple(SHAPES)


# ---------------------------------------------------------------------- layout
def _paste(labels: np.ndarray, canvas: np.ndarray, x0: int, y0: int, k: int) -> Optional[Box]:
    """Write label ``k`` where ``canvas`` is set (clipped to the image); its box or None."""
    height, width = labels.shape
    gx0, gy0 = max(x0, 0), max(y0, 0)
    gx1, gy1 = min(x0 + canvas.shape[1], width), min(y0 + canvas.shape[0], height)
    if gx0 >= gx1 or gy0 >= gy1:
        return None
    inside = canvas[gy0 - y0:gy1 - y0, gx0 - x0:gx1 - x0].view(bool)
    np.copyto(labels[gy0:gy1, gx0:gx1], np.uint8(k), where=inside)
    return gy0, gy1, gx0, gx1


def draw_layout(rng: np.random.Generator, height: int, width: int, max_objects: int,
                min_object_pixels: int, shapes: Sequence[str] = SHAPE_NAMES,
                object_scale: Tuple[float, float] = (0.05, 0.22)) -> SyntheticScene:
    """Draw the objects' geometry into a label map (no image).

    ``shapes`` restricts the kinds drawn (names of :data:`SHAPES`); ``object_scale`` is the
    range of an object's radius as a fraction of the scene's shorter side.
    """
    labels = np.zeros((height, width), np.uint8)  # (H, W)
    scale = min(height, width)
    boxes: Dict[int, Box] = {}
    for k in range(1, int(rng.integers(1, max_objects + 1)) + 1):
        shape = SHAPES[shapes[int(rng.integers(len(shapes)))]]
        centre = np.array([rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height])
        canvas, x0, y0 = shape(rng, centre, scale * rng.uniform(*object_scale), scale)
        box = _paste(labels, canvas, x0, y0, k)
        if box is not None:
            boxes[k] = box
    counts = cv2.calcHist([labels], [0], None, [256], [0, 256]).ravel()  # exact below 2**24
    ids = [k for k in boxes if counts[k] >= min_object_pixels]
    if not ids and boxes and counts[1:].max() > 0:
        ids = [max(boxes, key=lambda k: counts[k])]  # never an empty scene
    for k in set(boxes) - set(ids):  # dropped objects become background
        y0, y1, x0, x1 = boxes[k]
        region = labels[y0:y1, x0:x1]
        region[region == k] = 0
    return SyntheticScene(labels, ids, {k: boxes[k] for k in ids})


# ---------------------------------------------------------------------- appearance
def _background(rng: np.random.Generator, height: int, width: int, grain: int = 8
                ) -> Tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 gradient + colour blobs + grain, and the gradient's end colours (2, 3)."""
    ends = rng.uniform(30, 225, (2, 3))
    gh = max(2, round(16 * height / max(height, width)))
    gw = max(2, round(16 * width / max(height, width)))
    yy, xx = np.mgrid[0:gh, 0:gw] / np.array([gh - 1, gw - 1])[:, None, None]
    a = rng.uniform(0, 2 * math.pi)
    t = xx * math.cos(a) + yy * math.sin(a)
    t = (t - t.min()) / max(t.max() - t.min(), 1e-6)  # (gh, gw) in [0, 1]
    field = ends[0] + t[..., None] * (ends[1] - ends[0])
    blobs = cv2.resize(rng.normal(0, 18, (4, 4, 3)).astype(np.float32), (gw, gh),
                       interpolation=cv2.INTER_CUBIC)
    # Low-resolution field in [0, 255 - 2 grain], so adding grain in [0, 2 grain] never wraps.
    field = np.clip(field + blobs - grain, 0, 255 - 2 * grain).astype(np.uint8)
    image = cv2.resize(field, (width, height), interpolation=cv2.INTER_LINEAR)  # (H, W, 3)
    tile = rng.integers(0, 2 * grain + 1, (64, 64, 3), dtype=np.uint8)
    cv2.add(image, _tiled(tile, height, width), dst=image)
    return image, ends


def _tiled(tile: np.ndarray, height: int, width: int) -> np.ndarray:
    """``tile`` (t, t, ...) repeated over (height, width, ...)."""
    reps = (height // tile.shape[0] + 1, width // tile.shape[1] + 1) + (1,) * (tile.ndim - 2)
    return np.ascontiguousarray(np.tile(tile, reps)[:height, :width])


def _distance_to_segment(c: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    t = np.clip(np.dot(c - a, b - a) / max(np.dot(b - a, b - a), 1e-6), 0, 1)
    return float(np.linalg.norm(c - (a + t * (b - a))))


def _pick_colours(rng: np.random.Generator, ends: np.ndarray, n: int) -> List[np.ndarray]:
    """Object colours far (L2 > 100) from the background gradient and (> 60) each other."""
    chosen: List[np.ndarray] = []
    for _ in range(n):
        best, best_score = None, -np.inf
        for _ in range(40):
            c = rng.uniform(0, 255, 3)
            score = min([_distance_to_segment(c, ends[0], ends[1]) - 100]
                        + [float(np.linalg.norm(c - o)) - 60 for o in chosen])
            if score > best_score:
                best, best_score = c, score
            if score >= 0:
                break
        chosen.append(best)
    return chosen


def _texture_tile(rng: np.random.Generator, colour: np.ndarray) -> np.ndarray:
    """(t, t, 3) uint8 periodic tile: the colour modulated by stripes, a checker or grain."""
    kind, amp = int(rng.integers(3)), int(rng.integers(10, 36))
    half = int(rng.integers(2, 17))  # half period of stripes / checker cell
    size = 2 * half if kind < 2 else 32
    ys, xs = np.mgrid[0:size, 0:size]
    if kind == 0:  # stripes in one of 8 directions (period divides the tile: seamless)
        directions = [(1, 0), (0, 1), (1, 1), (1, -1), (2, 1), (1, 2), (2, -1), (1, -2)]
        dx, dy = directions[rng.integers(8)]
        pattern = ((xs * dx + ys * dy) // half) % 2
    elif kind == 1:  # checker
        pattern = (xs // half + ys // half) % 2
    else:  # grain
        pattern = rng.integers(0, 2, (size, size))
    tile = colour + ((pattern * 2 - 1) * (amp // 2))[..., None]
    return np.clip(tile, 0, 255).astype(np.uint8)


def render_scene(rng: np.random.Generator, scene: SyntheticScene) -> np.ndarray:
    """(H, W, 3) uint8 RGB image of a scene's label map."""
    height, width = scene.labels.shape
    image, ends = _background(rng, height, width)
    for k, colour in zip(scene.ids, _pick_colours(rng, ends, len(scene.ids))):
        y0, y1, x0, x1 = scene.boxes[k]
        inside = (scene.labels[y0:y1, x0:x1] == k).view(np.uint8)  # (h, w)
        patch = _tiled(_texture_tile(rng, colour), y1 - y0, x1 - x0)  # (h, w, 3)
        roi = image[y0:y1, x0:x1]
        out = cv2.copyTo(patch, inside, roi)  # masked copy (numpy's where= is ~50x slower)
        if not np.shares_memory(out, roi):
            roi[...] = out
    return image


# ---------------------------------------------------------------------- scenes
def _rngs(seed: int, index: int) -> Tuple[np.random.Generator, np.random.Generator]:
    geometry, texture = np.random.SeedSequence([seed, index]).spawn(2)
    return np.random.default_rng(geometry), np.random.default_rng(texture)


def scene_size(rng: np.random.Generator,
               image_size: Union[int, Tuple[int, int]]) -> Tuple[int, int]:
    """(H, W): ``image_size`` itself, or each side uniform in [min, max]."""
    if isinstance(image_size, int):
        return image_size, image_size
    low, high = image_size
    return int(rng.integers(low, high + 1)), int(rng.integers(low, high + 1))


def generate_scene(seed: int, index: int, image_size: Union[int, Tuple[int, int]],
                   max_objects: int = 8, min_object_pixels: int = 64,
                   render: bool = True, shapes: Sequence[str] = SHAPE_NAMES,
                   object_scale: Tuple[float, float] = (0.05, 0.22)) -> SyntheticScene:
    """Scene ``index`` of ``seed``: geometry, and the image unless ``render=False``.

    Args:
        seed (int): non-negative dataset seed.
        index (int): non-negative scene index.
        image_size (int | tuple[int, int]): side, or (min, max) of each side.
        max_objects (int): objects drawn, uniformly 1..max_objects (before dropping).
        min_object_pixels (int): objects with fewer visible pixels are dropped.
        render (bool): also render the image.
        shapes (Sequence[str]): kinds of objects drawn (keys of :data:`SHAPES`).
        object_scale (tuple[float, float]): object radius range, fraction of the shorter side.

    Returns:
        SyntheticScene: labels, kept ids, boxes and (with ``render``) the image.
    """
    geometry, texture = _rngs(seed, index)
    height, width = scene_size(geometry, image_size)
    scene = draw_layout(geometry, height, width, max_objects, min_object_pixels, shapes, object_scale)
    if render:
        scene.image = render_scene(texture, scene)
    return scene


# ---------------------------------------------------------------------- dataset
@DATASETS.register_module()
class SyntheticHighResDataset(BaseInteractiveDataset):
    """Procedurally generated high-resolution scenes (see the module docstring).

    ``img_path`` is None and ``img_id`` is ``'synthetic-<seed>-<index>'``; instance ids
    are the objects' drawing ranks (str). The last generated scene is cached, so
    ``load_image`` then ``load_masks`` draw once. In test mode the scenes' geometry is
    drawn at indexing time to enumerate the instances (about 0.01 s per 1024² scene).

    Args:
        num_images (int): number of scenes.
        image_size (int | tuple[int, int]): side of square scenes, or (min, max) of each
            side drawn independently (non-square scenes).
        max_objects (int): objects per scene are uniform in 1..max_objects (at most 254).
        min_object_pixels (int): objects with fewer visible pixels (after occlusion) are
            dropped.
        seed (int): non-negative seed; scene i depends only on (seed, i) (and the options).
        shapes (Sequence[str], optional): kinds of objects drawn, a subset of
            ``wavy, star, ring, frame, perforated, wire, tree, net`` (all by default).
        object_scale (tuple[float, float]): object radius range as a fraction of the scene's
            shorter side.
        **kwargs: :class:`BaseInteractiveDataset` arguments (``pipeline``, ``test_mode``, ...).
    """

    def __init__(self,
                 num_images: int = 1000,
                 image_size: Union[int, Tuple[int, int]] = (1024, 4096),
                 max_objects: int = 8,
                 min_object_pixels: int = 64,
                 seed: int = 0,
                 shapes: Optional[Sequence[str]] = None,
                 object_scale: Tuple[float, float] = (0.05, 0.22),
                 **kwargs):
        shapes = tuple(shapes) if shapes is not None else SHAPE_NAMES
        unknown = sorted(set(shapes) - set(SHAPE_NAMES))
        if unknown or not shapes:
            raise ValueError(f'shapes must be a non-empty subset of {SHAPE_NAMES}, got {shapes}')
        if not 0 < object_scale[0] <= object_scale[1]:
            raise ValueError(f'object_scale must be (low, high) with 0 < low <= high, got {object_scale}')
        self.shapes, self.object_scale = shapes, (float(object_scale[0]), float(object_scale[1]))
        if not isinstance(image_size, int):
            image_size = tuple(int(v) for v in image_size)
            if len(image_size) != 2 or not 0 < image_size[0] <= image_size[1]:
                raise ValueError(f'image_size must be an int or (min, max), got {image_size}')
        if not 1 <= max_objects <= 254:
            raise ValueError(f'max_objects must be in [1, 254], got {max_objects}')
        if seed < 0:
            raise ValueError(f'seed must be non-negative, got {seed}')
        self.num_images = int(num_images)
        self.image_size = image_size
        self.max_objects = int(max_objects)
        self.min_object_pixels = int(min_object_pixels)
        self.seed = int(seed)
        self._cache: Optional[Tuple[int, SyntheticScene]] = None
        super().__init__(**kwargs)

    def load_image_infos(self) -> List[dict]:
        infos = [dict(img_id=f'synthetic-{self.seed}-{i:06d}', img_path=None, scene_index=i,
                      instances=None) for i in range(self.num_images)]
        if self.test_mode:  # evaluation needs the instances up front
            for info in progress(infos, 'drawing synthetic layouts'):
                scene = self._generate(info['scene_index'], render=False)
                info['instances'] = [dict(instance_id=str(k)) for k in scene.ids]
        return infos

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state['_cache'] = None  # not shipped to dataloader workers
        return state

    def _generate(self, scene_index: int, render: bool = True) -> SyntheticScene:
        return generate_scene(self.seed, scene_index, self.image_size, self.max_objects,
                              self.min_object_pixels, render, self.shapes, self.object_scale)

    def scene(self, index: int) -> SyntheticScene:
        """The rendered scene of item ``index`` (cached: the last one)."""
        scene_index = self.get_data_info(index)['scene_index']
        if self._cache is None or self._cache[0] != scene_index:
            self._cache = (scene_index, self._generate(scene_index))
        return self._cache[1]

    def image_shape(self, index: int) -> Tuple[int, int]:
        geometry, _ = _rngs(self.seed, self.get_data_info(index)['scene_index'])
        return scene_size(geometry, self.image_size)

    def load_image(self, index: int) -> np.ndarray:
        return self.scene(index).image.copy()  # in-place transforms must not alter the cache

    def get_instance_ids(self, index: int) -> List[str]:
        instances = self.get_data_info(index)['instances']
        if instances is None:  # training: every kept object
            return [str(k) for k in self.scene(index).ids]
        return [str(inst['instance_id']) for inst in instances]

    def load_masks(self, index: int) -> np.ndarray:
        return self.scene(index).masks([int(i) for i in self.get_instance_ids(index)])
