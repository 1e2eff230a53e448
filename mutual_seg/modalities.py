"""The modality names and their file names in each data set layout: the one owner of both.

Names are the keys used end to end (configs, caches, checkpoints, the network's tracks, the
``--flair/--t2w`` flags of ``mutual-seg-predict``). Each layout names the same sequence its own way
on disk; the tables below are read by the layout readers, the synthetic generator (which writes
the UCSF-PDGM layout) and ``predict`` (which finds images in a subject folder), so a file name is
written once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mutual_seg.errors import ConfigError

# Modality names, in the canonical order (also the order of the synthetic set's sequences).
MODALITIES: tuple[str, ...] = ("t1", "t1c", "t2w", "flair", "swi", "dwi", "adc")

# What each name means, for help texts (``mutual-seg-predict --flair F``).
DESCRIPTIONS: Mapping[str, str] = {
    "t1": "T1-weighted",
    "t1c": "contrast-enhanced T1-weighted",
    "t2w": "T2-weighted",
    "flair": "FLAIR",
    "swi": "susceptibility-weighted",
    "dwi": "diffusion-weighted",
    "adc": "apparent diffusion coefficient",
}

# How the paper names each sequence in its tables (Table 1); reports and figures print these.
DISPLAY_NAMES: Mapping[str, str] = {
    "t1": "T1w", "t1c": "T1w (contrast)", "t2w": "T2w", "flair": "FLAIR", "swi": "SWI", "dwi": "DWI", "adc": "ADC",
}  # fmt: skip

# Names other data sets give our modalities (nnU-Net ``channel_names``, MSD ``modality``, BIDS suffixes), in
# the spelled-out form of ``channel_key`` (lower case, no ``-``/``_``/space): readers map channels with it and
# errors suggest the right name from it.
ALIASES: Mapping[str, str] = {
    "t2": "t2w", "t2weighted": "t2w",
    "t1w": "t1", "t1n": "t1", "t1native": "t1", "t1weighted": "t1",
    "t1ce": "t1c", "t1gd": "t1c", "t1wce": "t1c", "t1contrast": "t1c", "t1post": "t1c", "t1cew": "t1c",
    "t2f": "flair", "t2flair": "flair", "flairw": "flair",
}  # fmt: skip

# BIDS ``anat/`` suffixes (``sub-01_FLAIR.nii.gz``); ``T1w`` with a ``ce-`` entity is the contrast-enhanced T1.
BIDS_SUFFIXES: Mapping[str, str] = {"t1": "T1w", "t2w": "T2w", "flair": "FLAIR"}

# UCSF-PDGM: <id>_nifti/<id>_<SUFFIX>.nii.gz (``_<SUFFIX>_bias.nii.gz`` for bias-corrected ones).
UCSF_PDGM_SUFFIXES: Mapping[str, str] = {
    "t1": "T1", "t1c": "T1c", "t2w": "T2", "flair": "FLAIR", "swi": "SWI", "dwi": "DWI", "adc": "ADC",
}  # fmt: skip
# The label and the two masks of a UCSF-PDGM subject folder, <id>_<suffix>.nii.gz.
UCSF_PDGM_LABEL = "tumor_segmentation"
UCSF_PDGM_PARENCHYMA = "brain_parenchyma_segmentation"
UCSF_PDGM_BRAIN = "brain_segmentation"

# BraTS: <id>/<id><sep><suffix>.nii.gz, label <id><sep>seg.nii.gz.
BRATS2021_SUFFIXES: Mapping[str, str] = {"t1": "t1", "t1c": "t1ce", "t2w": "t2", "flair": "flair"}
BRATS2023_SUFFIXES: Mapping[str, str] = {"t1": "t1n", "t1c": "t1c", "t2w": "t2w", "flair": "t2f"}
BRATS_LABEL = "seg"


def check_modalities(
    modalities: Sequence[str], available: Sequence[str] = MODALITIES, layout: str | None = None
) -> tuple[str, ...]:
    """Validate requested modality names before any file is touched.

    Args:
        modalities: requested names, e.g. ``["flair", "t2w"]`` (a Hydra ListConfig is fine).
        available: the names the data set provides, in canonical order.
        layout: data set name for the message when a valid name is not provided by it.

    Returns:
        The names as a tuple of plain strings, in the requested order.

    Raises:
        ConfigError: not a list, empty, duplicated, unknown, or not provided by the layout.
    """
    if isinstance(modalities, (str, bytes)) or not isinstance(modalities, Sequence):
        raise ConfigError(
            f"modalities must be a list of names such as [flair, t2w], got {modalities!r}"
        )
    names = tuple(str(m) for m in modalities)
    if not names:
        raise ConfigError(f"no modality requested; choose from {', '.join(MODALITIES)}")
    for name in names:
        if name not in MODALITIES:
            raise ConfigError(f"unknown modality {name!r}{suggest(name)}; valid names: {', '.join(MODALITIES)}")
        if name not in available:
            raise ConfigError(
                f"{layout or 'this data set'} has no {name!r} images; its modalities are "
                f"{', '.join(available)}; pick from those or use a layout that has {name}"
            )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"modality listed twice: {', '.join(duplicates)}; list each once")
    return names


def channel_key(name: str) -> str:
    """A channel name as ``ALIASES`` spells it: ``T2-FLAIR`` -> ``t2flair``, ``T1 Gd`` -> ``t1gd``."""
    return "".join(c for c in str(name).lower() if c not in "-_ ")


def modality_of_channel(name: str, extra: Mapping[str, str] | None = None) -> str | None:
    """Our modality name for a data set's channel name (``FLAIR``, ``T2w``, ``t1gd``...), or None if unknown.

    ``extra`` maps further channel names to modalities (``data.layout.channel_map``) and wins over the table.
    """
    for table in (extra or {}), {m: m for m in MODALITIES}, ALIASES:
        by_key = {channel_key(k): str(v) for k, v in table.items()}
        if channel_key(name) in by_key:
            return by_key[channel_key(name)]
    return None


def suggest(name: str) -> str:
    """`` (did you mean 't1c'?)`` for a near miss such as ``T1ce``, else an empty string."""
    guess = modality_of_channel(name)
    return f" (did you mean {guess!r}?)" if guess else ""
