"""``medrobust corrupt --task nifti``: a corrupted copy of any folder of NIfTI volumes.

The ``corrupt`` subcommand (``cli/__init__.py``) takes ``--task nifti`` beside the tasks with a writer;
this module adds its arguments (``--images``, ``--labels``, ``--pair-key``) and runs
:func:`medrobust.corrupt.nifti.corrupt_nifti`.
"""

from __future__ import annotations

import argparse

from .common import check_out_folder

__all__ = ["TASK_NAME", "add_arguments", "cmd_corrupt_nifti"]

#: the ``--task`` value of the NIfTI writer (not a training task)
TASK_NAME = "nifti"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``--task nifti`` arguments of ``medrobust corrupt``."""
    from ..data.nifti import DEFAULT_PAIR_KEY

    p.add_argument("--images", metavar="GLOB",
                   help="--task nifti: glob of the image volumes (.nii/.nii.gz, ** recursive, quote it), e.g. "
                        "'MnM/Testing/*/*_sa.nii.gz'; copies go to OUT/<corruption>/<severity>/<path below the "
                        "inputs' common folder>")
    p.add_argument("--labels", metavar="GLOB",
                   help="--task nifti: glob of the label volumes, copied untouched and paired with the images by "
                        "--pair-key (every image needs a label and every label an image)")
    p.add_argument("--pair-key", default=DEFAULT_PAIR_KEY, metavar="REGEX",
                   help="--task nifti: regular expression giving a file's pairing key from its name (first group "
                        "or (?P<key>...)); default strips .nii[.gz] and a trailing _gt/_seg/_label(s)/_mask")


def cmd_corrupt_nifti(args: argparse.Namespace) -> int:
    """Run the NIfTI writer for parsed ``corrupt`` arguments."""
    from ..corrupt.common import parse_severities
    from ..corrupt.nifti import corrupt_nifti

    if args.images is None:
        raise ValueError("--images: required with --task nifti (a glob of .nii/.nii.gz volumes)")
    if getattr(args, "root", None) is not None:
        raise ValueError("--root: not used with --task nifti; give the volumes with --images GLOB [--labels GLOB]")
    check_out_folder(args.out)
    summary = corrupt_nifti(args.images, args.out, labels=args.labels, pair_key=args.pair_key,
                            corruptions=args.corruptions, severities=parse_severities(args.severities), seed=args.seed,
                            overwrite=args.overwrite, progress=not args.no_progress, device=args.device)
    print(f"wrote corrupted copy to {args.out}: {summary}")
    return 0
