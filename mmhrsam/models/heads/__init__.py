"""Decode heads: SAM's prompt encoder + mask decoder."""
from .sam_head import SAMHead

__all__ = ['SAMHead']
