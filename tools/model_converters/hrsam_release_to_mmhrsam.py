"""Convert a released HRSAM / HRSAM++ checkpoint to mmhrsam.

``backbone.*`` is kept as released; ``neck.*`` (SAM's prompt encoder, with
``pos_embed_layer`` -> ``pe_layer`` and ``point_embeds`` -> ``point_embeddings``) ->
``head.prompt_encoder.*``; ``decode_head.*`` (SAM's mask decoder) -> ``head.mask_decoder.*``.
``backbone.rope.freqs`` (the released rotary embedding's frequency table, a saved buffer) is
checked against the table mmhrsam's axial RoPE computes and dropped; a different table is
an error (the checkpoint would need another RoPE). A checkpoint wrapped under
``'state_dict'`` is unwrapped. The printed report lists kept tensors per group, the dropped
``backbone.rope.freqs`` and the result of its check.

``HRSAMPredictor.from_config`` and ``tools/test.py`` also accept the released layout and
convert it on load in the same way; converting once saves the work at every load.

Usage: ``python tools/model_converters/hrsam_release_to_mmhrsam.py SRC DST [--no-strict]``
(MMEngine training checkpoints usually need ``--allow-pickle``.)
"""
from typing import Optional, Sequence

from mmhrsam.utils.checkpoint import ConversionResult, convert_hrsam_release, converter_main


def main(argv: Optional[Sequence[str]] = None) -> ConversionResult:
    """Run the converter on ``argv`` (``sys.argv[1:]`` when None)."""
    return converter_main(convert_hrsam_release, __doc__, argv)


if __name__ == '__main__':
    main()
