"""Results shown to people: `mutual-seg-report DIR` (run folders -> the paper's Table 1 and 2, paired statistics,
Fig. 5 and overlays, the ablation table) and what a W&B dashboard shows during training.

Modules: ``build`` (select runs, write the report), ``tables``, ``stats``, ``figures`` (Fig. 5),
``overlays`` (Fig. 6/7), ``ablation`` (the ablation table), ``wandb_media`` (W&B overlays and test table, a
Lightning callback built from ``conf/logger/wandb.yaml``), ``cli`` (the command line).
"""
