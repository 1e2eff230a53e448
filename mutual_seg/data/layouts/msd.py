"""Medical Segmentation Decathlon tasks: ``TaskNN_Name/{dataset.json, imagesTr/<case>.nii.gz, labelsTr/...}``.

Each image is 4D, one volume per channel on the 4th axis, named by ``dataset.json``'s ``modality``; a subject's
image of a modality is a :class:`~mutual_seg.data.subject.ChannelPath` (file + volume), so the files stay where
they are and the cache still holds one volume per modality. macOS ``._`` copies in the archive are skipped.
"""

from __future__ import annotations

from pathlib import Path

from mutual_seg.data.layouts.nnunet import _DatasetJsonLayout
from mutual_seg.data.subject import ChannelPath


class MSDLayout(_DatasetJsonLayout):
    """Decathlon format (Task01_BrainTumour: FLAIR, T1w, t1gd, T2w in one 4D file per case).

    Args:
        root: the ``TaskNN_Name`` folder.
        images: ``imagesTr`` or ``imagesTs``.
        labels: ``labelsTr``, or null for images without labels.
        channel_map: channel name -> modality for names the table lacks (null: leave the channel out).
    """

    name = "MSD"

    def _cases(self, folder: Path, ending: str) -> list[str]:
        return sorted(p.name[: -len(ending)] for p in folder.iterdir()
                      if p.name.endswith(ending) and not p.name.startswith("."))

    def _images(self, folder: Path, case: str, ending: str, channels: dict[str, int]
                ) -> dict[str, Path | ChannelPath | None]:
        return {m: ChannelPath(folder / f"{case}{ending}", index) for m, index in channels.items()}

    def _example(self, ending: str) -> str:
        return f"<case>{ending} (4D)"
