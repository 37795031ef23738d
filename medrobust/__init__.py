"""medrobust: robustness toolkit for vision models (batched augmentation cores, corrupted test sets,
robust training and evaluation)."""

__version__ = "0.1.0"
