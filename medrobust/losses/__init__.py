"""Losses: consistency over views (KL-to-mean, JSD), segmentation Dice+CE."""

from .consistency import jsd, kl_to_mean

__all__ = ["jsd", "kl_to_mean"]
