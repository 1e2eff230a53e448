"""``python -m mutual_seg.export`` = ``mutual-seg-export``."""

import sys

from mutual_seg.export.cli import main

sys.exit(main())
