"""Command-line overrides checked before Hydra runs: unknown choices, unknown keys, wrong types, impossible values.

The one owner of override checking (the config tree itself and its composition are ``config.py``'s).

Hydra alone turns ``fold=abc`` into a 25-line traceback deep in the run, and ``trainer.max_epoch=1`` into a
multi-line error suggesting ``+trainer.max_epoch`` (which then fails in the Trainer). Here the config is composed
with Hydra's compose API first, and each problem becomes one ``ConfigError`` line naming the key, what was expected
and, for a misspelling, the nearest valid key.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from mutual_seg.config import GROUPS, compose, group_options
from mutual_seg.errors import ConfigError
from mutual_seg.masks import LARGEST_COMPONENT_CHOICES, is_largest_component_choice

# Lower bounds that nothing later checks in one line (fold/n_folds ranges belong to data/splits.py).
MINIMUM: dict[str, int] = {
    "seed": 0, "fold": 0, "data.batch_size": 1, "data.num_workers": 0, "data.cache_workers": 0,
    "data.val_slice_step": 1, "data.samples_per_epoch": 1, "trainer.max_epochs": 1,
    "module.inference_batch_size": 1,
}
# Settings that take one of a few values of mixed types (their default's type alone would refuse the others):
# the values, and the owner's test of one.
CHOICES: dict[str, tuple[tuple[Any, ...], Callable[[Any], bool]]] = {
    "module.largest_component": (LARGEST_COMPONENT_CHOICES, is_largest_component_choice),
}
_MISSING = object()
_NOUNS = {"data": "data set", "model": "model", "hydra/launcher": "launcher", "hparams_search": "search"}
_KINDS = {bool: "true or false", int: "an integer", float: "a number", list: "a list, e.g. [1,2]",
          dict: "a group of settings (or null)"}


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


def parse(args: Sequence[str]) -> list[Override]:
    """Hydra's own parse of ``key=value`` arguments (sweeps included)."""
    try:
        return OverridesParser.create().parse_overrides(list(args))
    except HydraException as err:
        raise ConfigError(f"cannot parse the command line: {str(err).splitlines()[0]}") from err


def _first(overrides: Sequence[Override]) -> list[str]:
    """The overrides with each sweep (``a,b``/``range``) reduced to its first value, for composing one job.

    A ``glob(...)`` over a group's choices needs Hydra's config loader to expand; such an override is left out
    (its choices were checked by ``check_group_overrides``).
    """
    lines = []
    for override in overrides:
        if not override.is_sweep_override():
            lines.append(override.input_line)
            continue
        try:
            lines.append(f"{override.get_key_element()}={next(iter(override.sweep_string_iterator()))}")
        except HydraException:
            continue
    return lines


def _values(override: Override) -> Iterator[Any]:
    if override.is_sweep_override():
        yield from override.sweep_iterator()
    else:
        yield override.value()


def _keys(node: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(node, DictConfig):
        for key in node:
            path = f"{prefix}{key}"
            yield path
            yield from _keys(node._get_node(key), f"{path}.")


def nearest_key(key: str, cfg: DictConfig) -> str | None:
    """The valid key most like ``key`` (a misspelling), preferring siblings of the same group."""
    with open_dict(cfg):
        known = [k for k in _keys(cfg) if not k.startswith("hydra")]
    parent = key.rpartition(".")[0]
    siblings = [k for k in known if k.rpartition(".")[0] == parent]
    for pool in (siblings, known):
        match = difflib.get_close_matches(key, pool, n=1, cutoff=0.6)
        if match:
            return match[0]
    return None


def _exists(cfg: DictConfig, key: str) -> bool:
    """Whether ``key`` is in the config, without resolving interpolations on the way."""
    node: Any = cfg
    for part in key.split("."):
        if isinstance(node, ListConfig) and part.isdigit() and int(part) < len(node):
            node = node._get_node(int(part))
        elif isinstance(node, DictConfig) and part in node.keys():  # noqa: SIM118 - keys() does not resolve
            node = node._get_node(part)
        else:
            return False
    return True


def _default(cfg: DictConfig, key: str) -> Any:
    try:
        return OmegaConf.select(cfg, key, default=_MISSING, throw_on_resolution_failure=True)
    except (OmegaConfBaseException, HydraException):  # an interpolation needing the live run (e.g. ${hydra:...}): nothing to compare with
        return None


def _kind(value: Any) -> type | None:
    for kind in (bool, int, float):
        if type(value) is kind:
            return kind
    if isinstance(value, (list, ListConfig)):
        return list
    if isinstance(value, (dict, DictConfig)):
        return dict
    return None  # strings and null take anything: paths, names, switches Hydra reads itself


def _fits(value: Any, kind: type) -> bool:
    if kind is float:
        return type(value) in (int, float)
    if kind is dict:
        return value is None or isinstance(value, dict)
    return isinstance(value, kind) and (kind is bool or not isinstance(value, bool))


def check_value(key: str, value: Any, default: Any, line: str) -> None:
    """Refuse ``value`` for ``key`` when its type differs from the default's or it is below ``MINIMUM``."""
    if key in CHOICES:
        choices, accepts = CHOICES[key]
        if not accepts(value):
            shown = ", ".join(str(c).lower() for c in choices)
            raise ConfigError(f"{line}: {key} expects one of {shown}, got {value!r}")
        return
    kind = _kind(default)
    if value is None and kind is not bool and key not in MINIMUM:
        return  # null switches a setting off (patch_size, scheduler, augment ...); counts and switches need a value
    if kind is not None and not _fits(value, kind):
        raise ConfigError(f"{line}: {key} expects {_KINDS[kind]}, got {value!r}; e.g. {key}={_example(default)}")
    low = MINIMUM.get(key)
    if low is not None and value is not None and type(value) is int and value < low:
        raise ConfigError(f"{line}: {key} expects an integer >= {low}, got {value}")


def _example(default: Any) -> str:
    if isinstance(default, (DictConfig, ListConfig)):
        return "null" if isinstance(default, DictConfig) else str(OmegaConf.to_container(default)).replace(" ", "")
    return str(default).lower() if isinstance(default, bool) else str(default)


def check_overrides(args: Sequence[str]) -> DictConfig:
    """Check every ``key=value`` of the command line; return the composed config (first job of a sweep).

    Raises:
        ConfigError: one line naming the key, what was expected, and the nearest valid key for a misspelling.
    """
    parsed = parse(args)
    overrides = [o for o in parsed if not o.key_or_group.startswith("hydra")]
    structural = [o for o in overrides if o.key_or_group in GROUPS or o.is_add() or o.is_delete() or o.is_force_add()]
    plain = [o for o in overrides if o not in structural]
    base = compose(_first(structural), hydra=True)
    for override in plain:
        key = override.key_or_group
        if not _exists(base, key):
            near = nearest_key(key, base)
            hint = f"nearest valid key: {near}" if near else "see the keys with `python -m mutual_seg.run --cfg job`"
            raise ConfigError(
                f"unknown config key {key!r} in {override.input_line!r}; {hint} "
                f"(to add a new key on purpose, write +{override.input_line})"
            )
        for value in _values(override):
            check_value(key, value, _default(base, key), override.input_line)
    cfg = compose(_first(parsed), hydra=True)  # with hydra.run.dir & co.: the run folder it will write
    for key, low in MINIMUM.items():  # also values that come from experiment files
        value = _default(cfg, key)
        if type(value) is int and value < low:
            raise ConfigError(f"{key}={value}: {key} expects an integer >= {low}, got {value}")
    return cfg
