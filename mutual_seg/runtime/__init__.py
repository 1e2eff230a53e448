"""The run lifecycle around ``train(cfg)``, at the bottom layer (imports nothing above ``results``).

``overrides`` (the one checker of command-line overrides) and ``preflight``, ``guards``, ``resume`` (the run
folder before a run), ``ddp`` (DDP inside multiruns and under SLURM), ``loggers``, ``sweep`` (sweep summaries),
``job``, ``provenance``, ``checkpoint_io``, ``malloc``. (Atomic writes live below it, in :mod:`mutual_seg.atomic`;
the run folder's names in :mod:`mutual_seg.results`.)
"""
