"""Where the Hydra config tree lives, the resolvers it uses, and early checks of config-group choices.

``conf/`` sits at the top of a checkout and is packaged into the wheel as ``mutual_seg/conf``; both are found.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf

from mutual_seg.errors import ConfigError

_PACKAGED = Path(__file__).resolve().parent / "conf"
_CHECKOUT = Path(__file__).resolve().parents[1] / "conf"
CONFIG_DIR: Path = _PACKAGED if _PACKAGED.is_dir() else _CHECKOUT

# Groups whose choices are files in conf/<group>/; the names users see in errors.
GROUPS = ("data", "modality", "model", "loss", "optim", "trainer", "callbacks", "logger", "experiment",
          "hparams_search", "hydra/launcher")
_NOUNS = {"data": "data set", "model": "model", "hydra/launcher": "launcher", "hparams_search": "search"}


def register_resolvers() -> None:
    """``${len:list}`` (e.g. out_channels from the label outputs), ``${downsampling:features}`` (the network's
    2^(depth-1), depth = len(features)), ``${folder_name:...}``, ``${budget_widths:...}`` and
    ``${dataset_labels:root,allowed|outputs}`` (label values from a data set's dataset.json). Safe to call twice."""
    if not OmegaConf.has_resolver("len"):
        OmegaConf.register_new_resolver("len", lambda value: len(value))
    if not OmegaConf.has_resolver("downsampling"):  # data.slices.crop_multiple
        OmegaConf.register_new_resolver("downsampling", lambda features: 2 ** (len(features) - 1))
    if not OmegaConf.has_resolver("folder_name"):  # sweep job folders: conf/hydra/default.yaml
        OmegaConf.register_new_resolver("folder_name", folder_name)
    if not OmegaConf.has_resolver("budget_widths"):  # experiment=ablation: equal-parameter widths per cell
        OmegaConf.register_new_resolver("budget_widths", _budget_widths)
    if not OmegaConf.has_resolver("dataset_labels"):  # data=nnunet|msd: label values from dataset.json
        OmegaConf.register_new_resolver("dataset_labels", _dataset_labels)


def _dataset_labels(root: str, which: str):
    from mutual_seg.data.layouts.dataset_json import (
        dataset_labels,  # lazy: read only where a config asks
    )

    return OmegaConf.create(dataset_labels(root, which))


def folder_name(name: str, limit: int = 200) -> str:
    """``name`` as a folder name file systems accept (255 bytes at most): a long one keeps its start plus a hash.

    A sweep names each job's folder by its overrides (``fold=0,model.net.features=[8,16,32,64],...``), which can
    pass the limit; the hash keeps the name unique and the same for the same overrides (``resume=true`` finds it).
    """
    raw = str(name).encode()
    if len(raw) <= limit:
        return str(name)
    return raw[: limit - 13].decode(errors="ignore") + "_" + hashlib.sha1(raw).hexdigest()[:12]


def _budget_widths(table, model: str, modality: str):
    from mutual_seg.models.budget import widths_for  # lazy: torch is not needed to read configs

    # a ListConfig, not a list: OmegaConf.resolve (run by instantiate) only stores config nodes or primitives
    return OmegaConf.create(widths_for(table, model, modality))


def group_options(group: str) -> list[str]:
    """Config names in ``conf/<group>/`` but ``base`` (the part others share); ``hydra/*`` groups add plugins' ones."""
    names = {p.stem for p in (CONFIG_DIR / group).glob("*.yaml") if p.stem != "base"}  # base: shared part
    if group.startswith("hydra/"):
        from hydra.core.config_store import ConfigStore
        from hydra.core.plugins import Plugins

        Plugins.instance()  # discovers the installed plugins, which register their configs (e.g. submitit_slurm)
        names |= {n.removesuffix(".yaml") for n in ConfigStore.instance().list(group)}
    return sorted(names)


def check_group_overrides(overrides: Sequence[str]) -> None:
    """Fail early, in one line, on an unknown choice such as ``modality=foo`` (Hydra's own error is multi-line).

    Raises:
        ConfigError: naming the unknown choice and listing the valid ones.
    """
    for override in overrides:
        key, sep, value = override.lstrip("+~").partition("=")
        if not sep or key not in GROUPS or "(" in value or value in ("", "null"):
            continue  # not a group choice, or a sweep function such as glob(*) that Hydra expands itself
        options = group_options(key)
        for choice in value.replace("[", "").replace("]", "").split(","):  # a sweep a,b or a list [a,b]
            if choice not in options:
                noun = _NOUNS.get(key, key)
                raise ConfigError(f"unknown {noun} {choice!r} in {override!r}; valid {key} choices: {', '.join(options)}")
