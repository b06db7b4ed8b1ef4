"""`python -m expression_perceiver.cli ...` (what `accelerate launch -m` and the study's cells run)."""

import sys

from . import main

sys.exit(main())
