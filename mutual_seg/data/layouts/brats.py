"""BraTS 2021 and 2023: one folder per scan, ``<id><sep><suffix>.nii.gz``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from mutual_seg.data.layouts.base import _FolderLayout, _Found, _probe
from mutual_seg.modalities import BRATS2021_SUFFIXES, BRATS2023_SUFFIXES, BRATS_LABEL


class _BraTSLayout(_FolderLayout):
    """BraTS: ``<id>/<id><sep><suffix>.nii.gz``; no masks, no metadata."""

    _suffixes: ClassVar[Mapping[str, str]]  # modality -> file suffix
    _sep: ClassVar[str]

    def _scan(
        self, dirs: list[tuple[re.Match[str], Path]], wanted: tuple[str, ...]
    ) -> list[_Found]:
        found = []
        for match, folder in dirs:
            stem = f"{folder.name}{self._sep}"
            images = {m: folder / f"{stem}{self._suffixes[m]}.nii.gz" for m in wanted}
            label = folder / f"{stem}{BRATS_LABEL}.nii.gz"
            found.append(_probe(folder.name, images, label, patient_id=match["patient"]))
        return found


class BraTS2021Layout(_BraTSLayout):
    """BraTS 2021: ``BraTS2021_00000/BraTS2021_00000_{flair,t1,t1ce,t2,seg}.nii.gz``.

    Args:
        root: folder holding the ``BraTS2021_XXXXX`` folders.
    """

    name = "BraTS 2021"
    example = "BraTS2021_00000"
    modalities = tuple(BRATS2021_SUFFIXES)
    _suffixes: ClassVar[Mapping[str, str]] = BRATS2021_SUFFIXES
    _sep = "_"
    _dir_pattern = re.compile(r"^(?P<patient>BraTS2021_\d{5})$")


class BraTS2023Layout(_BraTSLayout):
    """BraTS 2023 glioma: ``BraTS-GLI-00000-000/BraTS-GLI-00000-000-{t2f,t1n,t1c,t2w,seg}.nii.gz``.

    The last three digits are the timepoint, so ``patient_id`` is ``BraTS-GLI-00000``.

    Args:
        root: folder holding the ``BraTS-GLI-XXXXX-XXX`` folders.
    """

    name = "BraTS 2023"
    example = "BraTS-GLI-00000-000"
    modalities = tuple(BRATS2023_SUFFIXES)
    _suffixes: ClassVar[Mapping[str, str]] = BRATS2023_SUFFIXES
    _sep = "-"
    _dir_pattern = re.compile(r"^(?P<patient>BraTS-GLI-\d{5})-\d{3}$")
