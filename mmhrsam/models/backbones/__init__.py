from .hrsam import HRSAM
from .hrsam_plusplus import HRSAMPlusPlus
from .sam_lightening import SAMLightening
from .sam_vit import SAMViT

__all__ = ['HRSAM', 'HRSAMPlusPlus', 'SAMViT', 'SAMLightening']
