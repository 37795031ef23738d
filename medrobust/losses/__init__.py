"""Losses: consistency over views (KL-to-mean, JSD); segmentation Dice+CE and CE with ignore."""

from .consistency import jsd, kl_to_mean
from .segmentation import CrossEntropyIgnore, DiceCELoss

__all__ = ["jsd", "kl_to_mean", "DiceCELoss", "CrossEntropyIgnore"]
