from .click_segmentor import ClickSegmentor
from .distiller import SAMDistiller
from .interactive_sam import InteractiveSAM
from .progressive_distiller import ProgressiveDistiller

__all__ = ['InteractiveSAM', 'ClickSegmentor', 'SAMDistiller', 'ProgressiveDistiller']
