"""Tiny data sets in the nnU-Net raw, Decathlon (4D) and BIDS formats, written from the synthetic UCSF-PDGM set.

Real NIfTI files through nibabel: the synthetic subjects' own volumes, renamed (nnU-Net, BIDS) or stacked on a
4th axis (MSD), so every format holds the same pixels and labels as the UCSF-PDGM tree they come from.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

UCSF = {"flair": "FLAIR", "t2w": "T2", "t1": "T1", "t1c": "T1c"}


def _subjects(ucsf: Path) -> list[tuple[str, Path]]:
    return [(p.name.removesuffix("_nifti"), p) for p in sorted(ucsf.glob("UCSF-PDGM-*_nifti"))]


def _copy(src: Path, dst: Path, data: np.ndarray | None = None) -> None:
    image = nib.load(str(src))
    dst.parent.mkdir(parents=True, exist_ok=True)
    array = np.asarray(image.dataobj) if data is None else data
    nib.save(nib.Nifti1Image(array, image.affine, image.header), str(dst))


def write_nnunet(ucsf: Path, root: Path, n: int | None = None) -> Path:
    """``Dataset001_Tiny``: FLAIR and T2w channels (as ``T2-FLAIR``/``T2w``), labels 0/1/2/4, 2 cases in imagesTs."""
    subjects = _subjects(ucsf)[:n]
    for i, (sid, folder) in enumerate(subjects):
        part = "Ts" if i >= len(subjects) - 2 else "Tr"
        for channel, modality in enumerate(("flair", "t2w")):
            _copy(folder / f"{sid}_{UCSF[modality]}.nii.gz", root / f"images{part}" / f"{sid}_{channel:04d}.nii.gz")
        _copy(folder / f"{sid}_tumor_segmentation.nii.gz", root / f"labels{part}" / f"{sid}.nii.gz")
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "T2-FLAIR", "1": "T2w"},
        "labels": {"background": 0, "necrosis": 1, "edema": 2, "enhancing": 4},
        "numTraining": len(subjects) - 2, "file_ending": ".nii.gz"}, indent=2))
    return root


def write_msd(ucsf: Path, root: Path) -> Path:
    """``Task01_Tiny``: one 4D file per case (FLAIR, T1w, t1gd, T2w as in Task01_BrainTumour), labels 0..3."""
    training = []
    for sid, folder in _subjects(ucsf):
        volumes = [nib.load(str(folder / f"{sid}_{UCSF[m]}.nii.gz")) for m in ("flair", "t1", "t1c", "t2w")]
        stack = np.stack([np.asarray(v.dataobj, dtype=np.float32) for v in volumes], axis=-1)
        (root / "imagesTr").mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(stack, volumes[0].affine), str(root / "imagesTr" / f"{sid}.nii.gz"))
        label = folder / f"{sid}_tumor_segmentation.nii.gz"
        values = np.asarray(nib.load(str(label)).dataobj).astype(np.uint8)
        _copy(label, root / "labelsTr" / f"{sid}.nii.gz", np.where(values == 4, 3, values).astype(np.uint8))
        training.append({"image": f"./imagesTr/{sid}.nii.gz", "label": f"./labelsTr/{sid}.nii.gz"})
    (root / "dataset.json").write_text(json.dumps({
        "name": "Tiny", "tensorImageSize": "4D",
        "modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},
        "labels": {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"},
        "numTraining": len(training), "training": training, "test": []}, indent=2))
    return root


def write_bids(ucsf: Path, root: Path) -> Path:
    """A BIDS tree: FLAIR, T2w, T1w and ce-gadolinium T1w per subject, the last subject with two sessions;
    labels (``_dseg``) and brain masks under ``derivatives/manual``."""
    subjects = _subjects(ucsf)
    for i, (sid, folder) in enumerate(subjects):
        sub = f"sub-{i + 1:02d}"
        for ses in (["ses-01", "ses-02"] if i == len(subjects) - 1 else [""]):
            prefix = f"{sub}_{ses}" if ses else sub
            anat = root / sub / ses / "anat"
            for modality, suffix in (("flair", "FLAIR"), ("t2w", "T2w"), ("t1", "T1w"), ("t1c", "ce-gadolinium_T1w")):
                _copy(folder / f"{sid}_{UCSF[modality]}.nii.gz", anat / f"{prefix}_{suffix}.nii.gz")
            derived = root / "derivatives" / "manual" / sub / ses / "anat"
            _copy(folder / f"{sid}_tumor_segmentation.nii.gz", derived / f"{prefix}_dseg.nii.gz")
            _copy(folder / f"{sid}_brain_segmentation.nii.gz", derived / f"{prefix}_desc-brain_mask.nii.gz")
    (root / "dataset_description.json").write_text(json.dumps({"Name": "Tiny", "BIDSVersion": "1.9.0"}))
    return root
