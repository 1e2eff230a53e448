"""Layout readers: find subjects and their files in a data set tree, without loading pixels.

Each reader is built by Hydra from ``conf/data/*.yaml`` (``_target_`` plus kwargs) and answers one
question, ``find(modalities) -> list[Subject]``, so preprocessing, folds and prediction are the same
whichever data set is on disk. Readers only call ``Path.is_file``: scanning 500 subjects stays
instant, and a missing file is reported before hours of preprocessing rather than during them.

Examples::

    layout = UCSFPDGMLayout("data/ucsf", bias_corrected=True, include_followups=False,
                            cohort={"Final pathologic diagnosis (WHO 2021)": "Astrocytoma*"})
    subjects = layout.find(["flair", "t2w"])        # sorted by id
"""

from __future__ import annotations

from mutual_seg.data.layouts.base import SYNTHETIC_COMMAND, LayoutWarning, describe_missing
from mutual_seg.data.layouts.bids import BIDSLayout
from mutual_seg.data.layouts.brats import BraTS2021Layout, BraTS2023Layout
from mutual_seg.data.layouts.manifest import ManifestLayout
from mutual_seg.data.layouts.msd import MSDLayout
from mutual_seg.data.layouts.nnunet import NNUNetLayout
from mutual_seg.data.layouts.ucsf_pdgm import UCSFPDGMLayout

LAYOUTS: dict[str, type] = {
    "ucsf_pdgm": UCSFPDGMLayout,
    "brats2021": BraTS2021Layout,
    "brats2023": BraTS2023Layout,
    "manifest": ManifestLayout,
    "nnunet": NNUNetLayout,
    "msd": MSDLayout,
    "bids": BIDSLayout,
}

__all__ = [
    "LAYOUTS",
    "SYNTHETIC_COMMAND",
    "BIDSLayout",
    "BraTS2021Layout",
    "BraTS2023Layout",
    "LayoutWarning",
    "MSDLayout",
    "ManifestLayout",
    "NNUNetLayout",
    "UCSFPDGMLayout",
    "describe_missing",
]
