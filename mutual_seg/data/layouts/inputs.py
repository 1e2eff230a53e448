"""New patients in the nnU-Net, Decathlon and BIDS formats, for ``predict --input``: path -> subjects' files.

``format_inputs`` recognises an nnU-Net images folder (``imagesTs/`` of ``<case>_0000.nii.gz`` files, the data
set's ``dataset.json`` one level up), a Decathlon 4D file or images folder (``dataset.json`` with ``modality``
one level up), and a BIDS subject (``sub-XX/``) or root (``dataset_description.json``); anything else is left to
the subject-folder and manifest readers of ``predict``. Only paths are found here, as in every reader.
"""

from __future__ import annotations

import re
from pathlib import Path

import nibabel as nib
from omegaconf import OmegaConf

from mutual_seg.data.layouts.base import describe_missing
from mutual_seg.data.layouts.bids import BIDSLayout
from mutual_seg.data.layouts.dataset_json import read_dataset_json
from mutual_seg.data.layouts.msd import MSDLayout
from mutual_seg.data.layouts.nnunet import NNUNetLayout
from mutual_seg.data.subject import ChannelPath, Subject
from mutual_seg.errors import DataError, subject_error

Failure = tuple[str, str]  # (subject id, one-line error)
_CHANNEL_FILE = re.compile(r"^[^.].*_\d{4}\.nii(\.gz)?$")
_NIFTI_ENDINGS = (".nii.gz", ".nii")


def format_inputs(path: Path) -> tuple[list[Subject], list[Failure]] | None:
    """The subjects at ``path`` if it is in one of these formats (labels never read), else None.

    Raises:
        DataError: the format is recognised but unusable (e.g. a 4D file without its dataset.json).
    """
    if path.is_file() and path.name.endswith(_NIFTI_ENDINGS):
        return _msd_file(path)
    if not path.is_dir():
        return None
    if path.name.startswith("sub-") and (any(path.glob("anat")) or any(path.glob("ses-*/anat"))):
        return _bids(path.parent, path.name)
    if (path / "dataset_description.json").is_file() and any(path.glob("sub-*")):
        return _bids(path, None)
    if (path.parent / "dataset.json").is_file() and any(p.name.endswith(_NIFTI_ENDINGS) for p in path.iterdir()):
        files = [p for p in path.iterdir() if p.name.endswith(_NIFTI_ENDINGS)]
        kind = NNUNetLayout if any(_CHANNEL_FILE.match(p.name) for p in files) else MSDLayout
        layout = kind(path.parent, path.name, None, None)
        return _subjects(layout.scan(list(layout.modalities), require_label=False))
    return None


def _msd_file(path: Path) -> tuple[list[Subject], list[Failure]] | None:
    """One case of a Decathlon task: a 4D file whose channels ``dataset.json`` (one or two levels up) names."""
    try:
        shape = nib.load(str(path)).shape
    except Exception:  # noqa: BLE001 - not readable here: predict's own reader reports it with its message
        return None
    if len(shape) != 4 or shape[3] == 1:
        return None
    sid = path.name.removesuffix(".gz").removesuffix(".nii")
    folder = next((f for f in (path.parent.parent, path.parent) if (f / "dataset.json").is_file()), None)
    if folder is None:
        raise subject_error(sid, path, f"a 4D image ({shape[3]} volumes) but no dataset.json one or two folders "
                            "up to name its channels", "pass the file inside its task folder (TaskNN_Name/imagesTs/)")
    channels = read_dataset_json(folder, MSDLayout.name).modalities(None, MSDLayout.name)
    if max(channels.values()) >= shape[3]:
        raise subject_error(sid, path, f"dataset.json names {len(channels)} channels, the file has {shape[3]} "
                            "volumes", "check that the file belongs to this task")
    return [Subject(sid, {m: ChannelPath(path, i) for m, i in channels.items()})], []


def _bids(root: Path, subject: str | None) -> tuple[list[Subject], list[Failure]]:
    """A BIDS subject's sessions (or every subject's), with the masks the ``bids`` conf file's patterns find."""
    from mutual_seg.config import CONFIG_DIR  # the patterns' one owner: conf/data/bids.yaml

    conf = OmegaConf.load(CONFIG_DIR / "data" / "bids.yaml").layout
    layout = BIDSLayout(root, None, conf.brain_mask, conf.parenchyma_mask, conf.contrast_entity)
    return _subjects(layout.scan_sessions(list(layout.modalities), layout.sessions(subject)))


def _subjects(scanned: list[tuple[Subject, list[tuple[str, Path | None]]]]) -> tuple[list[Subject], list[Failure]]:
    """Subjects with what they have (predict picks the checkpoint's modalities); none at all is a failure."""
    subjects, failures = [], []
    for subject, missing in scanned:
        if subject.images:
            subjects.append(subject)
        else:
            what, where = missing[0]
            failures.append((subject.id, str(subject_error(subject.id, where, describe_missing(what, where),
                                                           "add the images or leave the subject out"))))
    if not subjects and not failures:
        raise DataError("no subject found; point --input at a subject or a data set")
    return subjects, failures
