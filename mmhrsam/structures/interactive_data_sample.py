"""The per-sample record that flows from datasets through models to metrics.

One sample is one object (instance) of one image. Fields, all optional except where a
stage needs them:

Data fields (set by ``PackInteractiveInputs`` and the data preprocessor):

* ``gt_mask`` (Tensor, uint8, (1, H, W)): the object in the frame of ``inputs``;
  1 object, 0 background, 255 ignore (padding added by the data preprocessor, or
  regions a dataset marks as unknown).
* ``teacher_embedding`` (Tensor, float16, (256, h, w)): stored SAM embedding of the
  same preprocessed image (distillation only).

Prediction fields (set by the click protocol in evaluation):

* ``ious`` (np.ndarray, float64, (K,)): IoU at the original resolution after each click.
* ``clicks`` (np.ndarray, int64, (K, 3)): (y, x, is_positive) in the original frame.
* ``encoder_time`` / ``decoder_times``: device-synchronized seconds.

Meta fields (``metainfo``): ``img_id`` (str, unique per image), ``instance_id`` (str),
``img_path`` (str or None for generated images), ``ori_shape`` (H0, W0) of the image
as loaded, ``img_shape`` (H, W) after resizing, ``pad_shape`` (Hp, Wp) after the data
preprocessor's padding, ``scale_factor`` (sy, sx) from original to resized, ``flip``.
"""
from mmengine.structures import BaseDataElement


class InteractiveDataSample(BaseDataElement):
    """A :class:`mmengine.structures.BaseDataElement` with the fields listed above."""

    @property
    def gt_mask(self):
        return self._gt_mask

    @gt_mask.setter
    def gt_mask(self, value):
        self.set_field(value, '_gt_mask')

    @gt_mask.deleter
    def gt_mask(self):
        del self._gt_mask
