"""``python -m medrobust.cli ...`` (e.g. under ``torchrun``): the ``medrobust`` command."""

import sys

from . import main

sys.exit(main())
