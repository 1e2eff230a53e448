"""`mutual-seg-predict --precision`: what ``auto`` picks, and bf16 masks that agree with float32 (Dice >= 0.995).

Also the all-present shortcut of the fusions' masking, which must not change a bit of the result.
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from mutual_seg.errors import ConfigError
from mutual_seg.fastpath import native_bf16, resolve_precision
from mutual_seg.predict import main

# Five subjects of the tiny set, predicted at both precisions by the tiny run's checkpoint (real NIfTI files).
SUBJECTS = ("UCSF-PDGM-0001", "UCSF-PDGM-0004", "UCSF-PDGM-0006", "UCSF-PDGM-0008", "UCSF-PDGM-0010")


def test_auto_is_bf16_exactly_where_bf16_is_native_and_short_names_resolve():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == ("bf16-mixed" if native_bf16(cpu) else "32-true")
    assert [resolve_precision(p, cpu) for p in ("32", "bf16", "32-true")] == ["32-true", "bf16-mixed", "32-true"]
    with pytest.raises(ConfigError, match="precision 'fp8'"):
        resolve_precision("fp8", cpu)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="the gate for making --precision auto the default is not met: on the 2-step "
                   "tiny model (probabilities near 1/2 everywhere) bf16 flips about 1.4 % of the float32 mask "
                   "(agreement 0.986, 2026-11-27); strict, so it fails the day the gate is met")
def test_bf16_masks_agree_with_float32(tiny_data, variants, tmp_path):
    """Pooled Dice between the float32 and the bf16 masks >= 0.995: the condition for making ``auto`` the default."""
    root = tmp_path / "in"
    root.mkdir()
    for sid in SUBJECTS:
        (root / f"{sid}_nifti").symlink_to(tiny_data / f"{sid}_nifti")
    masks = {}
    for precision in ("32", "bf16"):
        out = tmp_path / precision
        assert main(["--checkpoint", str(variants["best"]), "--input", str(root), "--output", str(out),
                     "--precision", precision]) == 0
        report = json.loads((out / "predict.json").read_text())
        assert report["precision"] == resolve_precision(precision, torch.device("cpu"))
        masks[precision] = np.stack([np.asanyarray(nib.load(out / f"{sid}_seg.nii.gz").dataobj) > 0 for sid in SUBJECTS])
    a, b = masks["32"], masks["bf16"]
    assert a.sum() > 1000, "the tiny model predicts too little tumour for the comparison to mean anything"
    assert 2 * (a & b).sum() / (a.sum() + b.sum()) >= 0.995
