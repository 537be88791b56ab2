from .click_segmentor import ClickSegmentor
from .distiller import SAMDistiller
from .interactive_sam import InteractiveSAM

__all__ = ['InteractiveSAM', 'ClickSegmentor', 'SAMDistiller']
