"""The unit every data stage passes along: one scan of one patient, as file paths only."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ChannelPath(os.PathLike):
    """One 3D volume of a 4D NIfTI: the file and the index on its 4th axis (MSD keeps every modality of a case
    in one file). ``os.fspath`` gives the file; ``str`` and ``name`` add the volume, for messages.
    """

    path: Path
    channel: int

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __str__(self) -> str:
        return f"{self.path} (4D, volume {self.channel})"

    @property
    def name(self) -> str:
        return f"{self.path.name} (4D, volume {self.channel})"

    @property
    def parent(self) -> Path:
        return self.path.parent

    def is_file(self) -> bool:
        return self.path.is_file()


ImagePath = Path | ChannelPath  # a 3D file, or one volume of a 4D file


@dataclass(frozen=True)
class Subject:
    """One scan: an id, a path per modality (a 3D file or a :class:`ChannelPath`), a label, optional masks, metadata.

    Layout readers build these without loading pixels. ``patient_id`` groups follow-up scans
    (``UCSF-PDGM-0429_FU003d``) with their patient so that folds never split a patient.
    """

    id: str
    images: dict[str, ImagePath]
    label: Path | None = None
    parenchyma_mask: Path | None = None
    brain_mask: Path | None = None
    patient_id: str = ""
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.patient_id:
            object.__setattr__(self, "patient_id", self.id)
