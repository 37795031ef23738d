"""Corruption cores: MRI artifacts (``mri``) and the natural-image suite (``natural``)."""
