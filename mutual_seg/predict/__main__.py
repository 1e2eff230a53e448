"""``python -m mutual_seg.predict``: the same command as ``mutual-seg-predict``."""

import sys

from mutual_seg.predict.cli import main

sys.exit(main())
