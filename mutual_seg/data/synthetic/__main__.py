"""`python -m mutual_seg.data.synthetic`."""

import sys

from mutual_seg.data.synthetic.cli import main

sys.exit(main())
