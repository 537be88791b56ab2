"""Convert an official Segment Anything checkpoint (``sam_vit_{b,l,h}_*.pth``) to mmhrsam.

``image_encoder.*`` -> ``backbone.*`` (:class:`mmhrsam.models.backbones.SAMViT`),
``prompt_encoder.*`` / ``mask_decoder.*`` -> ``head.prompt_encoder.*`` / ``head.mask_decoder.*``
(:class:`mmhrsam.models.heads.SAMHead`).

Usage: ``python tools/model_converters/sam_to_mmhrsam.py SRC DST [--no-strict]``
"""
from typing import Optional, Sequence

from mmhrsam.utils.checkpoint import ConversionResult, convert_sam, converter_main


def main(argv: Optional[Sequence[str]] = None) -> ConversionResult:
    """Run the converter on ``argv`` (``sys.argv[1:]`` when None)."""
    return converter_main(convert_sam, __doc__, argv)


if __name__ == '__main__':
    main()
