"""``python -m objrec`` (and ``torchrun --nproc_per_node N -m objrec train ...``): the CLI."""

import sys

from objrec.cli import main

sys.exit(main())
