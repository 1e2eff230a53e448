"""The run lifecycle around ``train(cfg)``, at the bottom layer (imports nothing above ``results``).

``overrides`` (the one checker of command-line overrides) and ``preflight``, ``guards``, ``resume`` (the run
folder before a run), ``ddp`` (DDP inside multiruns), ``loggers``, ``sweep`` (sweep summaries), ``job``,
``provenance``, ``atomic`` (atomic writes), ``checkpoint_io``, ``malloc``.
"""
