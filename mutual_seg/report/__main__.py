"""`python -m mutual_seg.report DIR`."""

import sys

from mutual_seg.report.cli import main

sys.exit(main())
