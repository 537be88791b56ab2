"""Training machinery: optimizer-wrapper constructors (layer-wise lr decay), the seeded train
loop and hooks."""
from .hooks import IterationRecordHook, ParamSyncCheckHook
from .optimizers import LayerDecayOptimWrapperConstructor
from .train_loop import SeededIterBasedTrainLoop

__all__ = ['LayerDecayOptimWrapperConstructor', 'SeededIterBasedTrainLoop', 'ParamSyncCheckHook', 'IterationRecordHook']
