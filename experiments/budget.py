"""Print the ablation's equal-parameter width table for ``conf/experiment/ablation.yaml``.

Usage (from the repository root)::

    python experiments/budget.py --budget 230000

Each study cell (model x modality set, ``mutual_seg.models.budget.CELLS``) gets the widths whose network lands
closest to the budget (``mutual_seg.models.budget.match_budget``); exit code 1 when one misses by more than
``TOLERANCE``, 2 on a budget too small for any network.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mutual_seg.errors import ConfigError, MutualSegError
from mutual_seg.models.budget import CELLS, TOLERANCE, relative_error, width_table


def main(argv: Sequence[str] | None = None) -> int:
    """Print the YAML width table; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, required=True, help="target parameter count, e.g. 230000")
    args = parser.parse_args(argv)
    try:
        if args.budget < 1000:
            raise ConfigError(f"--budget {args.budget} is too small for any network; use e.g. 230000")
        table = width_table(args.budget, CELLS)
    except MutualSegError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"  # computed by `python experiments/budget.py --budget {args.budget}`")
    print("  widths:")
    for model, row in table.items():
        print(f"    {model}:")
        for modality, entry in row.items():
            pct = 100 * (entry["parameters"] - args.budget) / args.budget
            print(f"      {modality}: {entry['features']}".ljust(44) + f"# {entry['parameters']:,} parameters ({pct:+.1f} %)")
    worst = max(relative_error(e["parameters"], args.budget) for row in table.values() for e in row.values())
    print(f"  # largest deviation from the budget: {100 * worst:.1f} % (tolerance {100 * TOLERANCE:.0f} %)")
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
