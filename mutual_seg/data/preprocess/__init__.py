"""Preprocessing: one subject's NIfTI files in, checked float32/uint8 arrays out, as training and ``predict`` share.

One job a module: ``settings`` (:class:`PreprocessSettings`, from ``conf/data``; keys the cache, saved in
checkpoints), ``geometry`` (same grid for every file; slice-first order), ``labels`` (label map -> output
channels), ``normalize`` (paper eq. 1, z-score), ``mask`` (which mask normalization uses) and ``pipeline``
(:func:`preprocess_subject`, all of the above in order). Reading NIfTI files is :mod:`mutual_seg.data.nifti`'s.

The names below are the package's public face: ``mutual_seg.data.preprocess.PreprocessSettings`` is the
``_target_`` of ``conf/data/base.yaml`` and of every saved checkpoint's preprocessing.
"""

from mutual_seg.data.preprocess.geometry import AFFINE_ATOL, check_geometry, slice_first, slice_last
from mutual_seg.data.preprocess.labels import binarize_label
from mutual_seg.data.preprocess.mask import MASK_SOURCES, choose_mask
from mutual_seg.data.preprocess.normalize import normalize_minmax, normalize_zscore
from mutual_seg.data.preprocess.pipeline import Preprocessed, preprocess_subject
from mutual_seg.data.preprocess.settings import NORMALIZATIONS, PreprocessSettings

__all__ = [
    "AFFINE_ATOL",
    "MASK_SOURCES",
    "NORMALIZATIONS",
    "PreprocessSettings",
    "Preprocessed",
    "binarize_label",
    "check_geometry",
    "choose_mask",
    "normalize_minmax",
    "normalize_zscore",
    "preprocess_subject",
    "slice_first",
    "slice_last",
]
