"""`mutual-seg-report DIR`: run folders -> the paper's Table 1 and 2, paired statistics, Fig. 5 and overlays.

Modules: ``build`` (select runs, write the report), ``tables``, ``stats``, ``figures`` (Fig. 5),
``overlays`` (Fig. 6/7), ``cli`` (the command line).
"""
