from .interactive_sam import InteractiveSAM

__all__ = ['InteractiveSAM']
