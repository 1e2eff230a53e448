"""Which mask a subject is normalized in: parenchyma, else brain, else each image's non-zero voxels."""

from __future__ import annotations

import logging
from pathlib import Path

from mutual_seg.data.subject import Subject

log = logging.getLogger(__name__)

MASK_SOURCES: tuple[str, ...] = ("parenchyma", "brain", "nonzero", "estimated")


def choose_mask(subject: Subject, warn: bool = True) -> tuple[str, Path | None]:
    """Pick the normalization mask: parenchyma, else brain mask, else each image's non-zero voxels.

    Only paths are inspected, so the choice (part of the cache key) costs no I/O. A fallback is
    logged because it changes the normalization the paper describes. A mask file counts by its
    non-zero voxels, so multi-label parenchyma segmentations (CSF/GM/WM) work as they are.

    Returns:
        ``(source, path)`` with source in ``MASK_SOURCES``; path is None for ``"nonzero"``.
    """
    if subject.parenchyma_mask is not None:
        return "parenchyma", Path(subject.parenchyma_mask)
    if subject.brain_mask is not None:
        if warn:
            log.warning(
                "subject %s: no parenchyma mask, normalizing inside the brain mask %s",
                subject.id,
                subject.brain_mask,
            )
        return "brain", Path(subject.brain_mask)
    if warn:
        log.warning(
            "subject %s: no parenchyma or brain mask, normalizing inside the non-zero voxels of each image",
            subject.id,
        )
    return "nonzero", None
