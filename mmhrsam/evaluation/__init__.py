"""Click simulation, exact distance transforms and interactive-segmentation metrics."""
from mmhrsam.structures.clicker import next_click, sample_click, squared_distance_transform_np
from mmhrsam.ops.distance_transform import squared_distance_transform
from mmhrsam.structures.click_sampling import next_click_torch, sample_click_torch
from .click_test_loop import ClickProtocol, ClickTestLoop
from .metrics import ClickMetric, noc_metrics, noc_per_instance, plot_clicks, plot_miou_curve

__all__ = [
    'next_click', 'sample_click', 'squared_distance_transform_np', 'next_click_torch',
    'sample_click_torch', 'squared_distance_transform', 'ClickMetric', 'noc_metrics',
    'noc_per_instance', 'plot_clicks', 'plot_miou_curve', 'ClickProtocol', 'ClickTestLoop'
]
