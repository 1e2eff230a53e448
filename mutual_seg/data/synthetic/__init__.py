"""Synthetic astrocytoma data set written in the exact UCSF-PDGM layout, read by the real reader.

The real UCSF-PDGM release needs a data-use agreement, so every demo and test runs on this set. Each
subject is the MNI152 2009 template (the 1 mm T1/GM/WM/brain maps nilearn ships, no download) put
through a random smooth deformation, given a diffuse tumour, and rendered as seven sequences with
a tissue contrast model. The model is built to show what the paper discusses, so that comparing
modalities means something: diffuse lobulated tumours whose labelled margin varies, CSF bright on
T2w but dark on FLAIR, CSF-like cysts labelled tumour, FLAIR-bright look-alikes that are not,
partial volume, bias fields, Rician noise, skull-stripped volumes.

One job per module:

=================  ==============================================================================
``contrasts``      tissue contrast table of the seven sequences, variants (``default``, ``shifted``, ``flair3d``)
``geometry``       the fixed 240 x 240 x 155 mm LPS field of view, smooth random fields, soft balls
``template``       the MNI152 maps and the ventricle / periventricular maps derived from them
``anatomy``        one random deformation of the template into tissue fractions
``tumour``         the diffuse tumour model (cysts, enhancing focus, label 1/2/4)
``distractors``    FLAIR-bright unlabelled regions (periventricular caps, choroid plexus)
``rendering``      sequences from fractions: contrasts, bias field, Rician noise
``metadata``       the metadata CSV row of a subject
``subject``        one subject in memory, seeded from (seed, index, variant)
``writer``         files in the UCSF-PDGM layout, resume/refuse, ``generate_dataset``
``cli``            ``python -m mutual_seg.data.synthetic`` / ``mutual-seg-synthetic``
=================  ==============================================================================

Usage::

    python -m mutual_seg.data.synthetic --out data/synthetic --subjects 35 --seed 0
"""

from mutual_seg.data.synthetic.contrasts import VARIANTS, Variant
from mutual_seg.data.synthetic.geometry import FOV_MM, grid_affine
from mutual_seg.data.synthetic.metadata import METADATA_COLUMNS, sample_metadata
from mutual_seg.data.synthetic.subject import SimulatedSubject, simulate_subject, subject_seed
from mutual_seg.data.synthetic.writer import GENERATOR_VERSION, MANIFEST, generate_dataset

__all__ = [
    "FOV_MM",
    "GENERATOR_VERSION",
    "MANIFEST",
    "METADATA_COLUMNS",
    "VARIANTS",
    "SimulatedSubject",
    "Variant",
    "generate_dataset",
    "grid_affine",
    "sample_metadata",
    "simulate_subject",
    "subject_seed",
]
