"""`mutual-seg-predict`: segment new patients from checkpoints alone, NIfTI in, NIfTI out.

- :mod:`~mutual_seg.predict.cli`: the command line, turned into typed :class:`PredictSettings`;
- :mod:`~mutual_seg.predict.inputs`: a subject's files (a subject folder, a data-set root, a manifest, explicit files);
- :mod:`~mutual_seg.predict.batch`: each subject preprocessed as in training and segmented by
  :mod:`mutual_seg.inference` (the test step's own whole-volume path), the models from :mod:`mutual_seg.checkpoint`;
- :mod:`~mutual_seg.predict.writer`: the NIfTI outputs and ``predict.json``.

Only the command line is imported here: torch and Lightning load once the arguments are valid.
"""

from mutual_seg.predict.cli import main, parse_args
from mutual_seg.predict.settings import DEFAULT_PRECISION, PRECISIONS, PredictSettings

__all__ = ["DEFAULT_PRECISION", "PRECISIONS", "PredictSettings", "main", "parse_args"]
