"""Where the Hydra config tree lives, the resolvers it uses, and the one way to compose it outside a Hydra run.

``conf/`` sits at the top of a checkout and is packaged into the wheel as ``mutual_seg/conf``; both are found.
Checking a command line's overrides is ``runtime/overrides.py``'s job; this module only knows the tree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra import compose as _hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException
from hydra.initialize import get_gh_backup, restore_gh_from_backup
from omegaconf import DictConfig, ListConfig, OmegaConf

from mutual_seg.errors import ConfigError

_PACKAGED = Path(__file__).resolve().parent / "conf"
_CHECKOUT = Path(__file__).resolve().parents[1] / "conf"
CONFIG_DIR: Path = _PACKAGED if _PACKAGED.is_dir() else _CHECKOUT

# Groups whose choices are files in conf/<group>/.
GROUPS = ("data", "modality", "model", "loss", "optim", "trainer", "callbacks", "logger", "experiment",
          "hparams_search", "hydra/launcher")


def register_resolvers() -> None:
    """``${len:list}`` (e.g. out_channels from the label outputs), ``${downsampling:features}`` (the network's
    2^(depth-1), depth = len(features)), ``${folder_name:...}`` and ``${budget_widths:...}``.
    Safe to call twice. (``${dataset_labels:...}`` belongs to the data formats: data/layouts/dataset_json.py.)"""
    if not OmegaConf.has_resolver("len"):
        OmegaConf.register_new_resolver("len", lambda value: len(value))
    if not OmegaConf.has_resolver("downsampling"):  # data.slices.crop_multiple
        OmegaConf.register_new_resolver("downsampling", lambda features: 2 ** (len(features) - 1))
    if not OmegaConf.has_resolver("folder_name"):  # sweep job folders: conf/hydra/default.yaml
        OmegaConf.register_new_resolver("folder_name", folder_name)
    if not OmegaConf.has_resolver("budget_widths"):  # experiment=ablation: equal-parameter widths per cell
        OmegaConf.register_new_resolver("budget_widths", _budget_widths)


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
    # a ListConfig, not a list: OmegaConf.resolve (run by instantiate) only stores config nodes or primitives
    return OmegaConf.create(widths_for(table, model, modality))


def widths_for(table: Mapping[str, Any] | None, model: str, modality: str) -> list[int]:
    """The ``features`` of one ablation cell from its width table (the ``${budget_widths:...}`` resolver).

    The table itself is computed by ``models/budget.py`` (``python experiments/budget.py --budget <n>``).

    Raises:
        ConfigError: the table has no entry for this model and modality set.
    """
    entry = (table or {}).get(model, {}).get(modality) if isinstance((table or {}).get(model), Mapping) else None
    if entry is None:
        cells = ", ".join(f"{m}/{s}" for m, row in (table or {}).items() for s in row)
        raise ConfigError(
            f"the ablation's width table (ablation.widths) has no entry for model={model} with modality={modality} "
            f"(it has {cells or 'none'}); add it from `python experiments/budget.py --budget <n>`"
        )
    return [int(w) for w in entry]


def compose(overrides: Sequence[str] = (), *, hydra: bool = False) -> DictConfig:
    """The config ``python -m mutual_seg.run OVERRIDES`` would run with, composed outside a Hydra run.

    The one place that composes ``conf/`` by hand (override checks, ``mutual-seg-check``, the width table,
    benchmarks, tests). Hydra's global state is put back as it was, so this is safe inside a running job.

    Args:
        overrides: ``key=value`` strings, no sweeps.
        hydra: keep the ``hydra`` node (run folder, choices, overrides).

    Raises:
        ConfigError: an override Hydra cannot apply, in one line.
    """
    register_resolvers()
    saved = get_gh_backup()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return _hydra_compose(config_name="config", overrides=list(overrides), return_hydra_config=hydra)
    except HydraException as err:
        raise ConfigError(f"invalid override: {str(err).splitlines()[0]}") from err
    finally:
        restore_gh_from_backup(saved)


def group_options(group: str) -> list[str]:
    """Config names in ``conf/<group>/`` but ``base`` (the part others share); ``hydra/*`` groups add plugins' ones."""
    names = {p.stem for p in (CONFIG_DIR / group).glob("*.yaml") if p.stem != "base"}  # base: shared part
    if group.startswith("hydra/"):
        from hydra.core.config_store import ConfigStore
        from hydra.core.plugins import Plugins

        Plugins.instance()  # discovers the installed plugins, which register their configs (e.g. submitit_slurm)
        names |= {n.removesuffix(".yaml") for n in ConfigStore.instance().list(group)}
    return sorted(names)


def to_plain(value: Any) -> Any:
    """Resolved plain Python containers (checkpoints and hyper-parameters must not depend on a live OmegaConf tree)."""
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value
