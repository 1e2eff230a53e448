"""The run folder, in one place: its file names and guard (:class:`RunFolder`, ``folder.py``), what a job writes
there at its end (``write.py``: ``metrics.csv``, ``summary.json``) and reading it back (``runs.py``: :func:`read_run`,
:func:`find_runs`). At the bottom of the layers: it imports nothing from ``runtime/``, which imports it.
"""

from mutual_seg.errors import ResultsError
from mutual_seg.results.folder import RunFolder
from mutual_seg.results.runs import Run, describe_layout, find_runs, read_run, sweep_jobs
from mutual_seg.results.write import (
    job_identity,
    print_results,
    write_failed,
    write_results,
    write_untested,
)

__all__ = [
    "ResultsError",
    "Run",
    "RunFolder",
    "describe_layout",
    "find_runs",
    "job_identity",
    "print_results",
    "read_run",
    "sweep_jobs",
    "write_failed",
    "write_results",
    "write_untested",
]
