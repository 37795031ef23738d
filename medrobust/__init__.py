"""medrobust: robustness toolkit for vision models (batched augmentation cores, corrupted test sets,
robust training and evaluation).

Importing medrobust before torch sets ``OMP_WAIT_POLICY=PASSIVE`` unless the environment already
sets it (or ``GOMP_SPINCOUNT``): torch's OpenMP threads then sleep at the end of a parallel region
instead of spinning. On cores shared with other jobs (a writer next to a training run or a data
loader) the default spinning made batched CPU kernels up to 40x slower (``pixelate`` 17 vs 669
images/s at 224x224 with load average 9 on 2 cores; ``docs/benchmarks.md``). The OpenMP runtime
reads the variable once, when torch is first imported, so it has no effect when torch was imported
first; :func:`medrobust.threads.omp_wait_policy` reports what is in force.
"""

import os as _os
import sys as _sys

if "OMP_WAIT_POLICY" not in _os.environ and "GOMP_SPINCOUNT" not in _os.environ:
    _os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # child processes (data loader workers) get it too
    _os.environ["_MEDROBUST_SET_OMP_WAIT_POLICY"] = "late" if "torch" in _sys.modules else "1"

__version__ = "0.1.0"
