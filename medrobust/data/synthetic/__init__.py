"""Synthetic data sets written in the layout of the real ones (for tests, demos and smoke runs)."""

from medrobust.data.synthetic.acdc import (
    DOMAINS,
    SyntheticPatient,
    make_synthetic_patient,
    write_synthetic_acdc,
)

__all__ = ["DOMAINS", "SyntheticPatient", "make_synthetic_patient", "write_synthetic_acdc"]
