"""One simulated subject in memory: anatomy, distractors, tumour, seven sequences, metadata.

Subject ``i`` is seeded from ``(seed, i, variant)``, so output is byte-identical whatever the
number of workers.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mutual_seg.data.synthetic.anatomy import anatomy
from mutual_seg.data.synthetic.contrasts import get_variant
from mutual_seg.data.synthetic.distractors import add_distractors
from mutual_seg.data.synthetic.geometry import FOV_MM, grid_affine
from mutual_seg.data.synthetic.metadata import sample_metadata
from mutual_seg.data.synthetic.rendering import render
from mutual_seg.data.synthetic.tumour import add_tumour


@dataclass
class SimulatedSubject:
    """One simulated scan, before writing. Arrays are (X, Y, Z) in the LPS grid of ``affine``.

    ``images`` maps modality names (``MODALITIES``) to float32 intensities; ``label`` holds
    {0, 1, 2, 4}; ``parenchyma``/``brain`` are the 0/1 masks; ``cyst``/``distractor`` are boolean
    masks of the CSF-like cysts (labelled 1) and the FLAIR-bright non-tumour regions (label 0).
    """

    images: dict[str, np.ndarray]
    label: np.ndarray
    parenchyma: np.ndarray
    brain: np.ndarray
    cyst: np.ndarray
    distractor: np.ndarray
    affine: np.ndarray
    metadata: dict[str, str]



def subject_seed(seed: int, index: int, variant: str) -> tuple[int, int, int]:
    """Entropy for subject ``index``: independent of worker order; variants get new anatomy."""
    return (int(seed), int(index), zlib.crc32(variant.encode()))



def simulate_subject(
    rng_seed: int | Sequence[int],
    shape: Sequence[int] = (240, 240, 155),
    variant: str = "default",
    index: int = 1,
) -> SimulatedSubject:
    """Simulate one subject in memory (no files): anatomy, distractors, tumour, seven sequences.

    Args:
        rng_seed: entropy for ``numpy.random.SeedSequence`` (``subject_seed(seed, i, variant)``).
        shape: voxels (X, Y, Z) over the fixed 240 x 240 x 155 mm field of view.
        variant: a ``VARIANTS`` preset name.
        index: subject number, only for the metadata ``ID``.

    Returns:
        A ``SimulatedSubject`` whose arrays all have shape ``shape``.
    """
    v = get_variant(variant)
    shape = tuple(int(n) for n in shape)
    seed = (
        [int(rng_seed)] if isinstance(rng_seed, (int, np.integer)) else [int(x) for x in rng_seed]
    )
    meta = sample_metadata(seed, index, variant)
    rng = np.random.default_rng(np.random.SeedSequence([*seed, 1]))
    vox = tuple(f / n for f, n in zip(FOV_MM, shape))
    fr, brain_mask, vent, pv, axes = anatomy(rng, shape, vox, v)
    # Distractors first, so that a tumour reaching them replaces them.
    add_distractors(rng, fr, brain_mask, vent, pv, axes, vox, v)
    del pv
    label, cyst = add_tumour(rng, fr, brain_mask, vent, axes, vox, v, int(meta["WHO CNS Grade"]))
    del vent
    b = np.maximum(fr["brain"], 1e-6)
    tissue = sum(fr[t] for t in ("gm", "wm", "tumour", "cyst", "enhancing", "cap"))
    parenchyma = brain_mask & ((tissue >= 0.5 * b) | (label > 0))
    distractor = brain_mask & (label == 0) & ((fr["cap"] > 0.4 * b) | (fr["choroid"] > 0.4 * b))
    del tissue, b
    return SimulatedSubject(
        images=render(rng, fr, brain_mask, axes, v),
        label=label,
        parenchyma=parenchyma.astype(np.uint8),
        brain=brain_mask.astype(np.uint8),
        cyst=cyst,
        distractor=distractor,
        affine=grid_affine(shape),
        metadata=meta,
    )

