"""The run lifecycle around ``train(cfg)``: checks before Hydra, DDP inside multiruns and under SLURM, resume, loggers,
sweep summaries, provenance. (Atomic writes live below it, in :mod:`mutual_seg.atomic`; the run folder's names in
:mod:`mutual_seg.results`.)"""
