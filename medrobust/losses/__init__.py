"""Losses: consistency over views (KL-to-mean, JSD); segmentation Dice+CE and CE with ignore; stability
training and the feature-map augmentation (FMA) loss."""

from .consistency import jsd, kl_to_mean
from .fma import FMALoss
from .segmentation import CrossEntropyIgnore, DiceCELoss
from .stability import stability_loss

__all__ = ["jsd", "kl_to_mean", "DiceCELoss", "CrossEntropyIgnore", "stability_loss", "FMALoss"]
