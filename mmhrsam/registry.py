"""Registries of mmhrsam, children of MMEngine's root registries.

Every registry has scope ``mmhrsam`` and a lazy ``locations`` list, so building
``dict(type='mmhrsam.HRSAM')`` from another OpenMMLab project (mmseg, mmdet, ...)
imports the defining module on demand once ``mmhrsam`` is imported or listed in
``custom_imports``. MMEngine resolves the ``mmhrsam.`` prefix by searching the
root registry's children, so no dependency on those projects is needed here.
"""
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

#: Neural network modules: attention variants, backbones, necks, heads, losses, segmentors.
MODELS = Registry('model', parent=MMENGINE_MODELS, scope='mmhrsam', locations=['mmhrsam.models'])
#: Datasets.
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, scope='mmhrsam', locations=['mmhrsam.datasets'])
#: Data transforms.
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, scope='mmhrsam',
                      locations=['mmhrsam.datasets'])
#: Metrics (NoC, NoF, mIoU, SPC).
METRICS = Registry('metric', parent=MMENGINE_METRICS, scope='mmhrsam', locations=['mmhrsam.evaluation'])
#: Evaluators.
EVALUATOR = Registry('evaluator', parent=MMENGINE_EVALUATOR, scope='mmhrsam',
                     locations=['mmhrsam.evaluation'])
#: Train/val/test loops (the click test loop).
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, scope='mmhrsam',
                 locations=['mmhrsam.evaluation', 'mmhrsam.engine'])
#: Hooks.
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope='mmhrsam', locations=['mmhrsam.engine'])
#: Optimizer-wrapper constructors (layer-wise lr decay).
OPTIM_WRAPPER_CONSTRUCTORS = Registry('optimizer wrapper constructor',
                                      parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS, scope='mmhrsam',
                                      locations=['mmhrsam.engine'])


# The remaining MMEngine roots, as plain children, so that a config with
# ``default_scope='mmhrsam'`` finds MMEngine's optimizers, schedulers, samplers, collate
# functions, visualizers, ... through this scope (MMEngine warns and falls back otherwise).
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS  # noqa: E402
from mmengine.registry import FUNCTIONS as MMENGINE_FUNCTIONS  # noqa: E402
from mmengine.registry import INFERENCERS as MMENGINE_INFERENCERS  # noqa: E402
from mmengine.registry import LOG_PROCESSORS as MMENGINE_LOG_PROCESSORS  # noqa: E402
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS  # noqa: E402
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS  # noqa: E402
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS  # noqa: E402
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS  # noqa: E402
from mmengine.registry import RUNNER_CONSTRUCTORS as MMENGINE_RUNNER_CONSTRUCTORS  # noqa: E402
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS  # noqa: E402
from mmengine.registry import STRATEGIES as MMENGINE_STRATEGIES  # noqa: E402
from mmengine.registry import TASK_UTILS as MMENGINE_TASK_UTILS  # noqa: E402
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS  # noqa: E402
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS  # noqa: E402
from mmengine.registry import WEIGHT_INITIALIZERS as MMENGINE_WEIGHT_INITIALIZERS  # noqa: E402

DATA_SAMPLERS = Registry('data sampler', parent=MMENGINE_DATA_SAMPLERS, scope='mmhrsam')
FUNCTIONS = Registry('function', parent=MMENGINE_FUNCTIONS, scope='mmhrsam')
INFERENCERS = Registry('inferencer', parent=MMENGINE_INFERENCERS, scope='mmhrsam')
LOG_PROCESSORS = Registry('log_processor', parent=MMENGINE_LOG_PROCESSORS, scope='mmhrsam')
MODEL_WRAPPERS = Registry('model_wrapper', parent=MMENGINE_MODEL_WRAPPERS, scope='mmhrsam')
OPTIM_WRAPPERS = Registry('optim_wrapper', parent=MMENGINE_OPTIM_WRAPPERS, scope='mmhrsam')
OPTIMIZERS = Registry('optimizer', parent=MMENGINE_OPTIMIZERS, scope='mmhrsam')
PARAM_SCHEDULERS = Registry('parameter scheduler', parent=MMENGINE_PARAM_SCHEDULERS, scope='mmhrsam')
RUNNER_CONSTRUCTORS = Registry('runner constructor', parent=MMENGINE_RUNNER_CONSTRUCTORS, scope='mmhrsam')
RUNNERS = Registry('runner', parent=MMENGINE_RUNNERS, scope='mmhrsam')
STRATEGIES = Registry('strategy', parent=MMENGINE_STRATEGIES, scope='mmhrsam')
TASK_UTILS = Registry('task util', parent=MMENGINE_TASK_UTILS, scope='mmhrsam')
VISBACKENDS = Registry('vis_backend', parent=MMENGINE_VISBACKENDS, scope='mmhrsam')
VISUALIZERS = Registry('visualizer', parent=MMENGINE_VISUALIZERS, scope='mmhrsam')
WEIGHT_INITIALIZERS = Registry('weight initializer', parent=MMENGINE_WEIGHT_INITIALIZERS, scope='mmhrsam')

def build_model(cfg: dict):
    """Build a module from mmhrsam's ``MODELS`` whatever the caller's default scope.

    Parts that build sub-modules (a backbone its attention layers, say) use this, so an
    HRSAM built by mmseg (``type='mmhrsam.HRSAM'``, default scope ``mmseg``) still finds
    ``KVPadSwinAttention`` here rather than in mmseg's registry.
    """
    cfg = dict(cfg)
    cfg.setdefault('_scope_', 'mmhrsam')
    return MODELS.build(cfg)
