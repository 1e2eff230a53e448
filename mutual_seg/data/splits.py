"""Patient-level splits: k-fold cross-validation or a fixed train/test split, with validation carved from train.

Splits are by patient, never by slice or scan, so that follow-up scans of one patient never sit on both sides.
They depend only on the sorted patient ids and the seed (numpy's PCG64 is the same on every machine), so a
fold is the same across runs, machines and modality sets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mutual_seg.errors import ConfigError


@dataclass(frozen=True)
class Split:
    """Patient ids of each part of one split."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]


def _permuted(ids: Sequence[str], seed: int) -> list[str]:
    ordered = sorted(set(ids))
    order = np.random.default_rng(seed).permutation(len(ordered))
    return [ordered[i] for i in order]


def kfold_test_patients(patient_ids: Sequence[str], n_folds: int, fold: int, seed: int) -> list[str]:
    """Test patients of ``fold``: the seeded permutation cut into ``n_folds`` near-equal parts."""
    unique = sorted(set(patient_ids))
    if n_folds < 2:
        raise ConfigError(f"n_folds must be at least 2, got {n_folds}; use data.split.fixed_test=N for one split")
    if not 0 <= fold < n_folds:
        raise ConfigError(f"fold must be in 0..{n_folds - 1}, got {fold}; set fold=0..{n_folds - 1}")
    if len(unique) < n_folds:
        raise ConfigError(
            f"{len(unique)} patients cannot be split into {n_folds} folds; lower n_folds or add subjects"
        )
    parts = np.array_split(np.array(_permuted(unique, seed), dtype=object), n_folds)
    return sorted(str(p) for p in parts[fold])


def make_split(
    patient_ids: Sequence[str],
    fold: int,
    n_folds: int,
    seed: int,
    val_fraction: float,
    fixed_test: int | str | None,
) -> Split:
    """Split patients into train/val/test.

    Args:
        patient_ids: one id per scan (duplicates, i.e. follow-ups, allowed).
        fold: test fold (k-fold mode).
        n_folds: number of folds (k-fold mode).
        seed: seed of the permutation.
        val_fraction: share of the non-test patients used for validation (at least one if > 0).
        fixed_test: if set, a fixed split with this many test patients instead of k-fold (paper Table 1: 10);
            ``"all"``: every patient is a test patient (evaluate a trained model on another data set).

    Returns:
        The patient ids of each part, each sorted.
    """
    unique = sorted(set(patient_ids))
    if fixed_test == "all":
        return Split(train=(), val=(), test=tuple(unique))
    if isinstance(fixed_test, str):
        raise ConfigError(f"data.split.fixed_test={fixed_test!r} must be an integer, 'all' or null")
    if fixed_test is not None:
        if not 0 < fixed_test < len(unique):
            raise ConfigError(
                f"data.split.fixed_test={fixed_test} must be between 1 and {len(unique) - 1} for {len(unique)} patients"
            )
        test = sorted(_permuted(unique, seed)[:fixed_test])
    else:
        test = kfold_test_patients(unique, n_folds, fold, seed)
    rest = [p for p in _permuted(unique, seed + 1) if p not in set(test)]
    n_val = round(val_fraction * len(rest))
    if val_fraction > 0:
        n_val = max(1, n_val)
    if n_val >= len(rest):
        raise ConfigError(
            f"data.split.val_fraction={val_fraction} leaves no training patients out of {len(rest)}; lower it"
        )
    return Split(train=tuple(sorted(rest[n_val:])), val=tuple(sorted(rest[:n_val])), test=tuple(test))
