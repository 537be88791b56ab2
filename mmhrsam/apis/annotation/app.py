"""The FastAPI application: the JSON API of docs/annotate.md and the page that uses it.

Routes are plain ``def`` functions, so FastAPI runs them in its worker threads and a long
embedding never blocks the event loop; each request on an image holds that image's lock
(requests on one image are answered one after the other, in arrival order).
"""
from __future__ import annotations

import logging
import shutil
import tempfile
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from fastapi import FastAPI, File, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from .errors import AnnotationError
from .images import ImageStore
from .objects import AnnotationStore, encode_mask
from .session import PredictorFactory, Segmenter, check_clicks

logger = logging.getLogger('mmhrsam.annotate')

STATIC_DIR = Path(__file__).parent / 'static'

#: Default largest image (width x height): two 8192² images' worth.
DEFAULT_MAX_PIXELS = 2 * 8192 * 8192


@dataclass
class AppOptions:
    """Settings of :func:`create_app`.

    Attributes:
        out_dir (Path): where saved objects go.
        images_dir (Path, optional): folder listed by ``GET /api/images``.
        upload_dir (Path, optional): where uploads are kept; a temporary folder removed at
            shutdown when None.
        model (str): model description for ``/api/health``.
        device (str): device description for ``/api/health``.
        warning (str, optional): shown on the page (e.g. random weights).
        target_sizes (Sequence[int]): target sizes offered.
        default_target_size (int): selected first.
        max_pixels (int): largest accepted image (width x height).
        preview_max_side (int): long side of the preview the browser gets.
        cache_size (int): embeddings kept in memory.
    """

    out_dir: Path
    images_dir: Optional[Path] = None
    upload_dir: Optional[Path] = None
    model: str = ''
    device: str = 'cpu'
    warning: Optional[str] = None
    target_sizes: Sequence[int] = (1024, 2048, 4096)
    default_target_size: int = 1024
    max_pixels: int = DEFAULT_MAX_PIXELS
    preview_max_side: int = 2048
    cache_size: int = 4


class EmbedRequest(BaseModel):
    target_size: Optional[int] = None


class PredictRequest(BaseModel):
    points: List[Tuple[float, float]] = Field(description='clicks (x, y) in original-image pixels')
    labels: List[int] = Field(description='1 positive, 0 negative, one per point')
    target_size: Optional[int] = None
    reset: bool = False


class SaveRequest(BaseModel):
    points: List[Tuple[float, float]]
    labels: List[int]
    label: str = Field('', max_length=200)
    target_size: Optional[int] = None


def create_app(predictor_factory: PredictorFactory, options: AppOptions) -> FastAPI:
    """Build the annotation app.

    Args:
        predictor_factory (PredictorFactory): makes predictors (one per cached embedding)
            with :class:`mmhrsam.apis.HRSAMPredictor`'s ``set_image`` / ``predict``.
        options (AppOptions): folders, limits and descriptions.
    """
    upload_dir = options.upload_dir
    temporary = upload_dir is None
    if temporary:
        upload_dir = Path(tempfile.mkdtemp(prefix='mmhrsam-annotate-uploads-'))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        if temporary:
            shutil.rmtree(upload_dir, ignore_errors=True)

    app = FastAPI(title='mmhrsam annotation', lifespan=lifespan)
    images = ImageStore(upload_dir, options.max_pixels, options.images_dir,
                        options.preview_max_side)
    segmenter = Segmenter(predictor_factory, images, options.target_sizes,
                          options.default_target_size, options.cache_size)
    store = AnnotationStore(options.out_dir)
    app.state.images, app.state.segmenter, app.state.store = images, segmenter, store

    @app.exception_handler(AnnotationError)
    async def annotation_error(request: Request, err: AnnotationError) -> JSONResponse:
        logger.warning('%s %s -> %d: %s', request.method, request.url.path, err.status_code, err)
        return JSONResponse(status_code=err.status_code, content=dict(detail=str(err)))

    _add_page_routes(app, options)
    _add_image_routes(app, images, segmenter)
    _add_click_routes(app, images, segmenter, store)
    return app


def _add_page_routes(app: FastAPI, options: AppOptions) -> None:
    app.mount('/static', StaticFiles(directory=STATIC_DIR), name='static')

    @app.get('/', include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / 'index.html')

    @app.get('/api/health')
    def health() -> dict:
        return dict(status='ok', device=options.device, model=options.model,
                    warning=options.warning, target_sizes=list(options.target_sizes),
                    default_target_size=options.default_target_size,
                    max_pixels=options.max_pixels)


def _add_image_routes(app: FastAPI, images: ImageStore, segmenter: Segmenter) -> None:
    @app.get('/api/images')
    def list_images() -> dict:
        return dict(images=images.list())

    @app.post('/api/images')
    def upload(file: UploadFile = File(...)) -> dict:
        record = images.add_upload(file.filename, file.file.read())
        logger.info('upload %s: %s (%dx%d)', record.image_id, record.name, record.width,
                    record.height)
        return record.describe()

    @app.get('/api/images/{image_id}')
    def describe(image_id: str) -> dict:
        record = images.get(image_id)
        with record.lock:
            images.preview(record)  # decodes once: reports a damaged folder file here
            return dict(record.describe(), preview_width=record.preview_size[0],
                        preview_height=record.preview_size[1],
                        cached_target_sizes=segmenter.cached_sizes(image_id))

    @app.get('/api/images/{image_id}/preview')
    def preview(image_id: str) -> Response:
        record = images.get(image_id)
        with record.lock:
            data = images.preview(record)
        return Response(data, media_type='image/jpeg')

    @app.post('/api/images/{image_id}/embed')
    def embed(image_id: str, body: EmbedRequest) -> dict:
        record = images.get(image_id)
        target_size = segmenter.target_size(body.target_size)
        with record.lock:
            _, cached, seconds = segmenter.embed(record, target_size)
        return dict(image_id=image_id, target_size=target_size, cached=cached,
                    seconds=round(seconds, 3))


def _add_click_routes(app: FastAPI, images: ImageStore, segmenter: Segmenter,
                      store: AnnotationStore) -> None:
    @app.post('/api/images/{image_id}/predict')
    def predict(image_id: str, body: PredictRequest) -> dict:
        record = images.get(image_id)
        target_size = segmenter.target_size(body.target_size)
        points, labels = check_clicks(body.points, body.labels, record.width, record.height)
        with record.lock:
            result = segmenter.predict(record, points, labels, target_size, reset=body.reset)
        return dict(encode_mask(result.mask), score=result.score, target_size=target_size)

    @app.post('/api/images/{image_id}/objects')
    def save_object(image_id: str, body: SaveRequest) -> dict:
        record = images.get(image_id)
        target_size = segmenter.target_size(body.target_size)
        points, labels = check_clicks(body.points, body.labels, record.width, record.height)
        with record.lock:
            result = segmenter.predict(record, points, labels, target_size)
            saved = store.save(record, result.mask, result.score, points.tolist(),
                               labels.tolist(), body.label, target_size)
        logger.info('saved object %s of %s (%s)', saved['object_id'], record.name,
                    saved['mask_file'])
        return dict(saved, image_id=image_id)

    @app.get('/api/images/{image_id}/objects')
    def list_objects(image_id: str) -> dict:
        record = images.get(image_id)
        return dict(image_id=image_id, json_file=store.json_path(record).name,
                    objects=store.list(record))
