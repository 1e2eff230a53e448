"""The unit every data stage passes along: one scan of one patient, as file paths only."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Subject:
    """One scan: an id, a path per modality, a label, optional masks, and metadata.

    Layout readers build these without loading pixels. ``patient_id`` groups follow-up scans
    (``UCSF-PDGM-0429_FU003d``) with their patient so that folds never split a patient.
    """

    id: str
    images: dict[str, Path]
    label: Path | None = None
    parenchyma_mask: Path | None = None
    brain_mask: Path | None = None
    patient_id: str = ""
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.patient_id:
            object.__setattr__(self, "patient_id", self.id)
