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
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, scope='mmhrsam')
#: Data transforms.
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, scope='mmhrsam')
#: Metrics (NoC, NoF, mIoU, SPC).
METRICS = Registry('metric', parent=MMENGINE_METRICS, scope='mmhrsam')
#: Evaluators.
EVALUATOR = Registry('evaluator', parent=MMENGINE_EVALUATOR, scope='mmhrsam')
#: Train/val/test loops (the click test loop).
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, scope='mmhrsam')
#: Hooks.
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope='mmhrsam')
#: Optimizer-wrapper constructors (layer-wise lr decay).
OPTIM_WRAPPER_CONSTRUCTORS = Registry('optimizer wrapper constructor',
                                      parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS, scope='mmhrsam')


def build_model(cfg: dict):
    """Build a module from mmhrsam's ``MODELS`` whatever the caller's default scope.

    Parts that build sub-modules (a backbone its attention layers, say) use this, so an
    HRSAM built by mmseg (``type='mmhrsam.HRSAM'``, default scope ``mmseg``) still finds
    ``KVPadSwinAttention`` here rather than in mmseg's registry.
    """
    cfg = dict(cfg)
    cfg.setdefault('_scope_', 'mmhrsam')
    return MODELS.build(cfg)
