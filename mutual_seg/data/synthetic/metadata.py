"""The metadata CSV of the synthetic set, with the release's columns (IDH-mutant astrocytomas)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mutual_seg.data.synthetic.contrasts import get_variant

METADATA_CSV = "UCSF-PDGM-metadata_v5.csv"
METADATA_COLUMNS = (
    "ID",
    "Sex",
    "Age at MRI",
    "WHO CNS Grade",
    "Final pathologic diagnosis (WHO 2021)",
    "MGMT status",
    "MGMT index",
    "1p/19q",
    "IDH",
    "1-dead 0-alive",
    "OS",
    "EOR",
    "Biopsy prior to imaging",
    "BraTS21 ID",
    "BraTS21 Segmentation Cohort",
    "BraTS21 MGMT Cohort",
)


def sample_metadata(
    rng_seed: Sequence[int], index: int, variant: str = "default"
) -> dict[str, str]:
    """The metadata CSV row of one subject (an IDH-mutant astrocytoma, as in the paper's cohort)."""
    v = get_variant(variant)
    rng = np.random.default_rng(np.random.SeedSequence([*rng_seed, 0]))
    grade = int(rng.choice([2, 3, 4], p=np.array(v.grade_probs) / sum(v.grade_probs)))
    dead = bool(rng.random() < 0.1 + 0.15 * (grade - 2))
    mgmt = str(rng.choice(["positive", "negative", "unknown"], p=[0.7, 0.15, 0.15]))
    return {
        "ID": f"UCSF-PDGM-{index:03d}",  # the real CSV writes 3 digits where folders use 4
        "Sex": str(rng.choice(["M", "F"])),
        "Age at MRI": str(int(np.clip(rng.normal(38, 12), 18, 80))),
        "WHO CNS Grade": str(grade),
        "Final pathologic diagnosis (WHO 2021)": "Astrocytoma, IDH-mutant",
        "MGMT status": mgmt,
        "MGMT index": str(int(rng.integers(0, 18))) if mgmt != "unknown" else "unknown",
        "1p/19q": "intact" if rng.random() < 0.8 else "unknown",
        "IDH": "mutated",
        "1-dead 0-alive": str(int(dead)),
        "OS": str(int(rng.integers(100, 2500))) if rng.random() < 0.9 else "unknown",
        "EOR": str(rng.choice(["GTR", "STR", "biopsy", "unknown"], p=[0.35, 0.4, 0.1, 0.15])),
        "Biopsy prior to imaging": "Yes" if rng.random() < 0.15 else "No",
        "BraTS21 ID": "unknown",
        "BraTS21 Segmentation Cohort": "unknown",
        "BraTS21 MGMT Cohort": "unknown",
    }
