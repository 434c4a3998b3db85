"""Random search (Bergstra & Bengio 2012), as Lucic et al. 2018 ran it: sample ``i`` of a study draws every key of
``search.space`` at random, reproducibly, so that a sweep over ``search.sample=range(0,100)`` *is* the random search.

    search:
      sample: 7                                   # null: no draws (the config's own values are used)
      seed: 0                                     # the study's random stream
      space:                                      # dotted key -> a value in Hydra's sweep syntax
        optim.lr: tag(log, interval(1e-5, 1e-2))  #   log-uniform on [a, b]
        optim.beta1: interval(0, 1)               #   uniform on [a, b)
        optim.n_disc: choice(1, 5)                #   one of the values, equally likely
        reg.gp.weight: tag(log, interval(0.1, 100))
        optim.beta2: 0.999                        #   a plain value is set as it is

The syntax is the Optuna sweeper's (``tag(int, interval(1, 8))`` draws an integer in [1, 8]). Each key has its own
stream, seeded by (seed, sample, key): sample ``i`` draws the same learning rate for every model of a study (a paired
comparison), and adding a key to the space changes no other key's draws. A key under ``reg.<name>`` applies only
to runs whose ``reg`` includes ``<name>`` (WGAN's clip value in a study of several models), and ``family.<key>``
only to runs whose family has that option (BEGAN's gamma), as long as some family in conf/family has it; any
other key the config lacks is an error.

Why not Optuna's RandomSampler: a sweep of draws by index is one Hydra grid (``gan=mm,ns,... search.sample=
range(0,100)``) that runs 100 samples *per model* in one command, and a relaunched sweep finds every run under the
same directory name (``search.sample=7``), so finished runs are skipped and unfinished ones resume.
"""

from __future__ import annotations

import math
import zlib
from typing import Any, Mapping

import numpy as np
from omegaconf import DictConfig, OmegaConf

from ganbench.errors import ConfigError

#: groups whose options are optional sub-nodes: a space key under one of them applies only when it is chosen
OPTIONAL_PARENTS = ("reg",)
#: groups whose options have different keys: ``<group>.<key>`` applies only to runs whose option has the key
OPTION_KEYS = ("family",)


def option_keys(group: str) -> set[str]:
    """Every top-level key of any option of ``group`` (conf/<group>/*.yaml; a ``@package _global_`` option's keys
    under its ``<group>`` node)."""
    from ganbench.config import CONF_DIR

    keys: set[str] = set()
    for path in (CONF_DIR / group).rglob("*.yaml"):
        node = OmegaConf.load(path)
        header = path.read_text().lstrip().startswith("# @package _global_")
        node = node.get(group) if header else node
        keys.update(str(k) for k in (node or {}).keys())
    return keys


def flatten_space(space: Mapping | None, prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": d}}`` and ``{"optim.lr": d}`` alike -> ``{"optim.lr": d}``."""
    out: dict[str, Any] = {}
    for key, value in (space or {}).items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_space(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def parse(key: str, spec: Any):
    """A space entry as Hydra's override parser reads it (an Override: a choice/range/interval sweep or a value)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        return OverridesParser.create().parse_override(f"{key}={spec}")
    except HydraException as exc:
        raise ConfigError(f"search.space.{key}: cannot read {spec!r} ({str(exc).splitlines()[0]}); use e.g. "
                          f"'tag(log, interval(1e-5, 1e-2))', 'interval(0, 1)' or 'choice(1, 5)'") from None


def stream(seed: int, sample: int, key: str) -> np.random.Generator:
    """The random stream of one key of one sample of a study."""
    return np.random.default_rng([int(seed), int(sample), zlib.crc32(key.encode())])


def draw(key: str, spec: Any, seed: int, sample: int) -> Any:
    """The value of ``key`` in sample ``sample`` of the study seeded ``seed``."""
    if not isinstance(spec, str):
        return spec
    override = parse(key, spec)
    rng = stream(seed, sample, key)
    if override.is_discrete_sweep():  # choice(...), range(...), a,b,c
        values = list(override.sweep_iterator())
        if not values:
            raise ConfigError(f"search.space.{key}: {spec!r} has no values")
        return values[int(rng.integers(len(values)))]
    if override.is_sweep_override():  # interval(...), possibly tagged log / int
        dist = override.value()
        lo, hi = float(dist.start), float(dist.end)
        log = "log" in dist.tags
        if not lo < hi or (log and lo <= 0):
            raise ConfigError(f"search.space.{key}: {spec!r} needs low < high{' and low > 0 (log)' if log else ''}")
        u = rng.random()
        if "int" in dist.tags:  # integers in [low, high], both included (as Optuna's int distributions)
            lo, hi = math.ceil(lo), math.floor(hi)
            top = hi + 1
            value = math.exp(math.log(lo) + u * (math.log(top) - math.log(lo))) if log else lo + u * (top - lo)
            return int(min(math.floor(value), hi))
        return math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))) if log else lo + u * (hi - lo)
    return override.value()


def _applies(cfg: DictConfig, key: str) -> bool:
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if not isinstance(node, DictConfig):
        head = parent.split(".")
        if head[0] in OPTIONAL_PARENTS and len(head) >= 2 and head[1] not in (cfg.get(head[0]) or {}):
            return False  # reg.wclip.clip in a run without wclip
        raise ConfigError(f"search.space.{key}: the config has no {parent} (keys of the space must name existing "
                          f"keys, or reg.<name>.<key> of a regularizer some runs use)")
    if leaf not in node:
        if parent in OPTION_KEYS and leaf in option_keys(parent):
            return False  # family.gamma in a run of a family without gamma
        raise ConfigError(f"search.space.{key}: {parent or 'the top level'} has no key {leaf!r}; its keys are: "
                          f"{', '.join(str(k) for k in node.keys())}")
    return True


def apply_search(cfg: DictConfig) -> dict[str, Any]:
    """Set the keys of ``cfg.search.space`` to sample ``cfg.search.sample``'s draws (nothing when it is null or
    there is no ``search``, nor for sample 0 with ``search.defaults_first``: the model's defaults, the space still
    checked); return what was set."""
    search = cfg.get("search")
    if not search or search.get("sample") is None:
        return {}
    try:
        sample, seed = int(search.sample), int(search.get("seed") or 0)
    except (TypeError, ValueError):
        raise ConfigError(f"search.sample and search.seed must be integers; got {search.sample!r}, "
                          f"{search.get('seed')!r}") from None
    if sample < 0:
        raise ConfigError(f"search.sample must be an integer >= 0 (or null); got {sample}")
    space = flatten_space(OmegaConf.to_container(search.get("space") or {}, resolve=True))
    drawn = {key: draw(key, spec, seed, sample) for key, spec in space.items() if _applies(cfg, key)}
    if sample == 0 and search.get("defaults_first"):
        return {}  # compare_gan v1 generate_tasks_lib.py::TuneParams: sample 0 of every model is its defaults
    for key, value in drawn.items():
        OmegaConf.update(cfg, key, value, merge=False)
    return drawn
