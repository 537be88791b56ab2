"""Convert an MAE (or timm) ViT-B checkpoint to an HRSAM backbone initialisation.

Keeps ``patch_embed.proj``, ``pos_embed`` (at its (1, 197, 768) shape: HRSAM resizes it at
run time, slot 0 unused) and ``blocks.{i}.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``
under ``backbone.``; drops ``cls_token``, ``norm``, ``fc_norm``, ``head``, ``mask_token`` and
the MAE decoder (``decoder_*``). A checkpoint wrapped under ``'model'`` is unwrapped.

Usage: ``python tools/model_converters/mae_to_mmhrsam.py SRC DST [--no-strict]``
(full MAE training checkpoints hold an argparse namespace: add ``--allow-pickle``.)
"""
from typing import Optional, Sequence

from mmhrsam.utils.checkpoint import ConversionResult, convert_mae, converter_main


def main(argv: Optional[Sequence[str]] = None) -> ConversionResult:
    """Run the converter on ``argv`` (``sys.argv[1:]`` when None)."""
    return converter_main(convert_mae, __doc__, argv)


if __name__ == '__main__':
    main()
