"""Tissue contrasts of the seven sequences, and the variants' parameter ranges.

Intensity table (``default`` variant, relative to white matter = 1; ADC in units of
1e-6 mm^2/s after scaling by 700; other sequences get a random scanner gain)::

    tissue        T1    T1c   T2w   FLAIR  SWI   DWI   ADC
    csf           0.30  0.30  2.30  0.12   1.15  0.30  4.30
    grey matter   0.70  0.72  1.25  1.18   0.88  1.10  1.15
    white matter  1.00  1.00  1.00  1.00   1.00  1.00  1.00
    tumour        0.62  0.64  2.20  1.95   1.02  1.15  1.90
    cyst          0.33  0.33  2.30  0.22   1.12  0.35  4.00
    enhancing     0.66  1.70  1.70  1.70   0.75  1.40  1.20
    pv. cap       0.92  0.92  1.12  1.80   1.00  1.05  1.25
    choroid pl.   0.60  1.30  2.05  1.65   0.65  0.55  2.30

Per subject every entry is jittered (log-normal, ``contrast_jitter``), and noise, bias strength,
tumour size/shape/location, cyst/enhancement/distractor presence are drawn from the variant's
ranges. Three regimes, each a plausible protocol:

- ``default``: FLAIR is hard (FLAIR-bright periventricular caps and choroid plexus look like tumour, T2w tells
  them apart): the paper's case for a second modality.
- ``shifted``: other contrast ratios, tumour statistics, distractor frequencies and noise/bias levels, to check
  generalisation on data made with settings nobody tuned on.
- ``flair3d``: FLAIR is already strong and T2w adds little and misleads. It models a protocol with a 3D FLAIR
  (isotropic, strong CSF nulling, high lesion contrast, in a younger cohort with few periventricular caps) beside
  a fast 2D T2w (turbo spin echo with 5 mm slices and one average): the T2w is blurred through the slices and
  noisier, and its tumour is darker than CSF, so the bright sulci, ventricles and cysts next to a tumour are
  where T2w points the wrong way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mutual_seg.errors import ConfigError

# fmt: off
TISSUES = ("csf", "gm", "wm", "tumour", "cyst", "enhancing", "cap", "choroid")
# Rows follow MODALITIES (t1, t1c, t2w, flair, swi, dwi, adc); columns follow TISSUES.
INTENSITY = {
    "t1":    (0.30, 0.70, 1.00, 0.62, 0.33, 0.66, 0.92, 0.60),
    "t1c":   (0.30, 0.72, 1.00, 0.64, 0.33, 1.70, 0.92, 1.30),
    "t2w":   (2.30, 1.25, 1.00, 2.20, 2.30, 1.70, 1.12, 2.05),
    "flair": (0.12, 1.18, 1.00, 1.95, 0.22, 1.70, 1.80, 1.65),
    "swi":   (1.15, 0.88, 1.00, 1.02, 1.12, 0.75, 1.00, 0.65),
    "dwi":   (0.30, 1.10, 1.00, 1.15, 0.35, 1.40, 1.05, 0.55),
    "adc":   (4.30, 1.15, 1.00, 1.90, 4.00, 1.20, 1.25, 2.30),
}
SCANNER_SCALE = {"t1": 900.0, "t1c": 900.0, "t2w": 500.0, "flair": 600.0,
                 "swi": 400.0, "dwi": 300.0, "adc": 700.0}
# fmt: on


@dataclass(frozen=True)
class Variant:
    """Ranges the per-subject parameters are drawn from; ``(lo, hi)`` means uniform."""

    contrast_jitter: float = 0.08  # log-normal sd per (sequence, tissue)
    intensity_override: dict = field(default_factory=dict)  # {(modality, tissue): value}
    tumour_volume_cm3: tuple = (5.0, 150.0)  # log-uniform, at the label boundary (approx.)
    tumour_aspect: tuple = (0.75, 1.35)
    lobulation: tuple = (0.15, 0.40)  # smooth-noise amplitude on the normalized radius
    wm_preference: float = 0.2  # growth along white matter
    edge_level: tuple = (0.08, 0.28)  # share of tumour contrast left at the label edge
    grade_probs: tuple = (0.5, 0.3, 0.2)  # WHO grades 2, 3, 4
    enhancing_prob: tuple = (0.15, 0.35, 0.8)  # per grade
    cyst_prob: float = 0.4
    cap_prob: float = 0.75
    choroid_prob: float = 0.6
    noise: tuple = (0.02, 0.05)  # Rician sigma relative to white matter
    bias: tuple = (0.05, 0.15)  # sd of the log bias field
    deformation_mm: float = 3.0
    scale: tuple = (0.92, 1.05)
    rotation_deg: float = 4.0
    noise_gain: dict = field(default_factory=dict)  # {modality: factor on the noise sigma}
    slice_thickness_mm: dict = field(default_factory=dict)  # {modality: acquired slice thickness (z blur, FWHM)}


VARIANTS: dict[str, Variant] = {
    "default": Variant(),
    "shifted": Variant(
        contrast_jitter=0.14,
        intensity_override={
            ("flair", "tumour"): 1.75,
            ("t2w", "tumour"): 2.0,
            ("flair", "csf"): 0.2,
            ("flair", "cap"): 1.9,
            ("t1", "tumour"): 0.75,
            ("flair", "cyst"): 0.35,
        },
        tumour_volume_cm3=(3.0, 100.0),
        tumour_aspect=(0.6, 1.6),
        lobulation=(0.3, 0.55),
        wm_preference=0.35,
        edge_level=(0.08, 0.18),
        grade_probs=(0.35, 0.35, 0.3),
        enhancing_prob=(0.25, 0.5, 0.9),
        cyst_prob=0.6,
        cap_prob=0.95,
        choroid_prob=0.85,
        noise=(0.04, 0.08),
        bias=(0.15, 0.28),
        deformation_mm=5.0,
        scale=(0.9, 1.04),
        rotation_deg=6.0,
    ),
    "flair3d": Variant(
        intensity_override={
            ("flair", "tumour"): 2.15,
            ("flair", "csf"): 0.08,
            ("flair", "cyst"): 0.18,
            ("flair", "cap"): 1.35,
            ("flair", "choroid"): 1.30,
            ("t2w", "csf"): 2.60,
            ("t2w", "tumour"): 1.85,
            ("t2w", "choroid"): 2.30,
        },
        cap_prob=0.3,
        choroid_prob=0.5,
        noise_gain={"t2w": 2.0},
        slice_thickness_mm={"t2w": 5.0},
    ),
}


def get_variant(name: str) -> Variant:
    """The preset called ``name``; a ConfigError lists the valid ones."""
    if name not in VARIANTS:
        raise ConfigError(f"unknown variant {name!r}; choose one of {', '.join(VARIANTS)}")
    return VARIANTS[name]
