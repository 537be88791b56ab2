"""Local annotation web app (``tools/annotate.py``): a FastAPI server and its page.

Needs the ``app`` requirements (FastAPI, uvicorn, python-multipart; see
requirements/app.txt); ``import mmhrsam`` does not import this package.
"""
from .app import DEFAULT_MAX_PIXELS, AppOptions, create_app
from .errors import AnnotationError
from .model import SharedModel, load_shared_model, resolve_device
from .session import Predictor, PredictorFactory

__all__ = ['AppOptions', 'AnnotationError', 'DEFAULT_MAX_PIXELS', 'Predictor', 'PredictorFactory',
           'SharedModel', 'create_app', 'load_shared_model', 'resolve_device']
