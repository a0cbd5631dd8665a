"""`python -m scarce.cli` (what torchrun starts on every rank)."""

import sys

from scarce.cli.main import main

sys.exit(main())
