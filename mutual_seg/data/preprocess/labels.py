"""Label maps -> binary output channels, refusing values the data set should not have."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mutual_seg.errors import subject_error


def binarize_label(
    label: np.ndarray,
    outputs: Sequence[Sequence[int]],
    allowed: Sequence[int],
    *,
    subject_id: str = "?",
    path: str | Path | None = None,
) -> np.ndarray:
    """Turn an integer label map into O binary channels, channel o = ``isin(label, outputs[o])``.

    The default config (``outputs [[1, 2, 4]]``) gives whole tumour = label > 0; BraTS sub-regions
    are e.g. ``[[1, 2, 4], [1, 4], [4]]`` (whole tumour, tumour core, enhancing).

    Args:
        label: label map of any shape, e.g. (X, Y, Z); float input must hold integer values.
        outputs: O lists of label values, one per output channel.
        allowed: every value the label may contain.
        subject_id: named in error messages.
        path: label file, named in error messages.

    Returns:
        uint8 array (O, *label.shape) of 0/1.

    Raises:
        DataError: non-integer values, or values outside ``allowed``.
    """
    rounded = np.rint(label)
    if not np.array_equal(rounded, label):
        bad = np.unique(label[rounded != label])[:5]
        raise subject_error(
            subject_id,
            path,
            f"label values must be integers, found {bad.tolist()}",
            "point the layout at the segmentation file (not a probability map)",
        )
    values = np.unique(rounded).astype(np.int64)
    unexpected = sorted(set(values.tolist()) - {int(a) for a in allowed})
    if unexpected:
        raise subject_error(
            subject_id,
            path,
            f"unexpected label values {unexpected} (allowed {sorted(int(a) for a in allowed)})",
            "set data.preprocessing.label_allowed (and data.preprocessing.label_outputs) to match the data set",
        )
    ints = rounded.astype(np.int64)
    return np.stack([np.isin(ints, np.asarray(list(o), dtype=np.int64)) for o in outputs]).astype(
        np.uint8
    )
