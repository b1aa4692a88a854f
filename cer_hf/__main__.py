"""`python -m cer_hf …` is the same as the `cer-hf` console script."""

import sys

from cer_hf.cli import main

sys.exit(main())
