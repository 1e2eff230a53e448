"""Volume cache: preprocessed subjects as memory-mappable, slice-first ``.npy`` files.

Training reads slices from here and never touches ``.nii.gz``. On disk, per subject::

    <cache_dir>/<subject_id>/<modality>-<key>.npy   float32 (Z, X, Y)   normalized image
    <cache_dir>/<subject_id>/label-<key>.npy        uint8 (Z, O, X, Y)  binary label channels
    <cache_dir>/<subject_id>/mask-<key>.npy         uint8 (Z, X, Y)     normalization mask
    <cache_dir>/<subject_id>/meta-<key>.json        spacing, affine, shape, source files (written last)

Each key is a 16-hex sha1 of what that entry depends on (input paths, sizes, mtimes, settings,
``CACHE_VERSION``), so touching a file or changing a setting yields a new key, and runs with
``flair``, ``t2w`` and ``flair+t2w`` share the per-modality entries. Old keys are never deleted.

One job a module: ``plan`` (keys and file names, :class:`CachePlan`), ``build`` (preprocess and write one
subject), ``entry`` (:class:`CachedSubject`, reading entries back), ``volume_cache`` (:class:`VolumeCache`).
"""

from mutual_seg.data.cache.entry import CachedSubject
from mutual_seg.data.cache.plan import CACHE_VERSION, CachePlan
from mutual_seg.data.cache.volume_cache import VolumeCache

__all__ = ["CACHE_VERSION", "CachePlan", "CachedSubject", "VolumeCache"]
