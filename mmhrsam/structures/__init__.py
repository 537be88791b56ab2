from .interactive_data_sample import InteractiveDataSample

__all__ = ['InteractiveDataSample']
