"""Checking a config before anything runs: every bad option, key, type or value becomes one line naming what is
wrong and what is allowed.

``preflight(argv)`` runs before Hydra: it checks each config-group choice on the command line (every value of a
sweep), composes the first job of the sweep and validates it, so a typo fails in a second with one line instead of
a Hydra traceback (or nine failed jobs). ``validate(cfg)`` is the value check, also run inside every job.
"""

from __future__ import annotations

import errno
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from ganbench.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"

# resolvers the YAML files use (registered on import: every entrypoint and test composing conf/ imports this module)
def run_id(overrides: str, limit: int = 200) -> str:
    """A run's directory name: its overrides (``loss=ns,reg=gp``), or ``default``; a name longer than ``limit``
    (file systems allow 255 bytes) keeps its first 150 characters plus a hash of the whole, so the same command
    still finds the same directory (resume)."""
    import hashlib

    name = overrides or "default"
    if len(name.encode()) <= limit:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:12]
    return f"{name.encode()[:150].decode(errors='ignore')}...{digest}"


OmegaConf.register_new_resolver("ganbench_run_id", run_id, replace=True)
# budgets counted in discriminator steps (compare_gan's convention): g_steps: ${ganbench_div:200000,${optim.n_disc}}
OmegaConf.register_new_resolver("ganbench_div", lambda a, b: int(a) // int(b), replace=True)
CONFIG_NAME = "train"
#: groups whose option is a list of configs (``reg=[gp,sn]``)
MULTI_GROUPS = ("reg", "logger")


@dataclass(frozen=True)
class Rule:
    key: str
    cast: Callable[[Any], Any]
    ok: Callable[[Any], bool]
    allowed: str
    optional: bool = False


def _int(v):
    if isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()):
        raise ValueError
    return int(v)


def _float(v):
    if isinstance(v, bool):
        raise ValueError
    return float(v)


RULES = (
    Rule("seed", _int, lambda v: v >= 0, "an integer >= 0"),
    Rule("optim.lr", _float, lambda v: v > 0, "a number > 0"),
    Rule("optim.lr_g", _float, lambda v: v > 0, "a number > 0 (or null: optim.lr)", optional=True),
    Rule("optim.lr_d", _float, lambda v: v > 0, "a number > 0 (or null: optim.lr)", optional=True),
    Rule("optim.beta1", _float, lambda v: 0 <= v < 1, "a number in [0, 1)", optional=True),
    Rule("optim.beta2", _float, lambda v: 0 <= v < 1, "a number in [0, 1)", optional=True),
    Rule("optim.n_disc", _int, lambda v: v >= 1, "an integer >= 1"),
    Rule("optim.batch_size", _int, lambda v: v >= 1, "an integer >= 1"),
    Rule("optim.z_dim", _int, lambda v: v >= 1, "an integer >= 1"),
    Rule("optim.g_steps", _int, lambda v: v >= 1, "an integer >= 1"),
    Rule("optim.prior", str, lambda v: v in ("normal", "uniform"), "normal or uniform"),
    Rule("ema.decay", _float, lambda v: 0 <= v < 1, "a number in [0, 1) (0 disables the EMA generator)"),
    Rule("checkpoint.every", _int, lambda v: v >= 0, "an integer >= 0 (0: only at the end)"),
    Rule("samples.every", _int, lambda v: v >= 0, "an integer >= 0 (0: only at the end)"),
    Rule("samples.num", _int, lambda v: v >= 1, "an integer >= 1"),
    Rule("stop_after", _int, lambda v: v >= 1, "an integer >= 1 (or null)", optional=True),
    Rule("log_every", _int, lambda v: v >= 1, "an integer >= 1"),
    Rule("penalty_weight", _float, lambda v: v >= 0, "a number >= 0 (or null)", optional=True),
    Rule("metrics.every", _int, lambda v: v >= 0, "an integer >= 0 (0: only at the end)", optional=True),
)


def _non_finite(node: Any, prefix: str = "") -> str | None:
    """The first key whose value is an infinite or NaN number (no numeric option of ganbench takes one)."""
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = ((str(i), v) for i, v in enumerate(node))
    else:
        return prefix if isinstance(node, float) and not math.isfinite(node) else None
    for k, v in items:
        bad = _non_finite(v, f"{prefix}.{k}" if prefix else str(k))
        if bad:
            return bad
    return None


def check_accelerator(cfg: DictConfig) -> None:
    """trainer=gpu on a machine without a GPU: one line instead of Lightning's traceback."""
    accelerator = str(OmegaConf.select(cfg, "trainer.accelerator", default="cpu"))
    if accelerator in ("gpu", "cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"trainer.accelerator={accelerator}: no GPU found here (torch.cuda.is_available() is "
                              f"false); use trainer=cpu, or install a CUDA build of torch on a GPU machine")


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError (one line) for the first value outside its allowed range."""
    plain = OmegaConf.to_container(cfg, resolve=False)
    bad = _non_finite({k: v for k, v in plain.items() if k != "hydra"})
    if bad:
        raise ConfigError(f"{bad} must be a finite number; got {OmegaConf.select(cfg, bad)}")
    check_accelerator(cfg)
    for rule in RULES:
        parent = OmegaConf.select(cfg, rule.key.rpartition(".")[0]) if "." in rule.key else cfg
        if not isinstance(parent, DictConfig):  # a config without this section (e.g. conf/evaluate.yaml)
            continue
        try:
            raw = OmegaConf.select(cfg, rule.key, throw_on_missing=True)
        except Exception as exc:  # missing mandatory value or a broken interpolation
            raise ConfigError(f"{rule.key}: {str(exc).splitlines()[0]}") from None
        if raw is None and (rule.optional or OmegaConf.select(cfg, rule.key.split(".")[0]) is None):
            continue
        try:
            value = rule.cast(raw)
            good = rule.ok(value)
        except (TypeError, ValueError):
            good = False
        if not good:
            raise ConfigError(f"{rule.key} must be {rule.allowed}; got {raw!r}")
    for net in ("generator", "discriminator"):  # the sizes every architecture takes
        for size in ("width", "hidden", "layers"):
            key = f"model.{net}.{size}"
            value = OmegaConf.select(cfg, key, default=None)
            if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ConfigError(f"{key} must be an integer >= 1; got {value!r}")
    strategy = str(OmegaConf.select(cfg, "trainer.strategy", default="auto"))
    if any(word in strategy for word in ("spawn", "fork", "notebook")):
        raise ConfigError(f"trainer.strategy={strategy} is not supported: its ranks run in child processes that "
                          f"cannot return the run's record, metrics and EMA state; use trainer=ddp (Lightning starts "
                          f"the ranks, or in a sweep the launcher's tasks do)")
    if OmegaConf.select(cfg, "reg") is not None:
        norms = [name for name in cfg.reg if name in ("bn", "ln")]
        if len(norms) > 1:
            raise ConfigError(f"reg: choose at most one discriminator normalization; got {', '.join(norms)}")


def apply_penalty_weight(cfg: DictConfig) -> None:
    """``penalty_weight`` (lambda of the studies' grids), when set, becomes the ``weight`` of every penalty in
    ``reg`` that has one (gp, dragan, dragan_lucic, l2), so one sweep axis covers every regularizer of a grid; the
    recorded config then holds the weights actually used."""
    weight = cfg.get("penalty_weight")
    if weight is None:
        return
    for node in (cfg.get("reg") or {}).values():
        if isinstance(node, DictConfig) and "weight" in node:
            node.weight = float(weight)


def group_options(group: str) -> list[str]:
    """Every option of a config group, nested ones by their path (``kurach2019/mini``)."""
    root = CONF_DIR / group
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.yaml"))


def config_groups() -> list[str]:
    return sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir())


def _check_group_value(group: str, value: Any) -> None:
    values = value if isinstance(value, (list, tuple)) else [value]
    options = group_options(group)
    for v in values:
        if v is None or str(v) == "null":
            continue
        if str(v) not in options:
            raise ConfigError(f"{group}={v}: no such option; {group} is one of: {', '.join(options)}")
    if isinstance(value, (list, tuple)) and group not in MULTI_GROUPS:
        raise ConfigError(f"{group}={list(value)}: {group} takes one option, not a list; one of: "
                          f"{', '.join(options)}")


def _unknown_key_message(base: DictConfig, key: str) -> str | None:
    node: Any = base
    parts = key.split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, DictConfig):
            return None
        if part not in node:
            where = ".".join(parts[:i]) or "the top level"
            keys = ", ".join(str(k) for k in node.keys())
            return (f"{key}: no such key in {where}; its keys are: {keys} "
                    f"(prefix with + to add a new key)")
        node = node[part]
    return None


CLI_FLAGS_WITH_VALUE = ("--config-name", "-cn", "--config-path", "-cp", "--config-dir", "-cd", "--cfg", "-c",
                        "--package", "-p", "--info", "-i", "--experimental-rerun", "--shell-completion", "-sc")


def preflight(argv: list[str], config_name: str = CONFIG_NAME) -> None:
    """Check the command line's overrides against ``conf/<config_name>.yaml``; raise ConfigError (one line) on the
    first problem."""
    if any(a.startswith("-") and a not in ("-m", "--multirun") for a in argv):
        return  # --help, --cfg, --info, ...: Hydra's own business
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    args = [a for a in argv if not a.startswith("-")]
    try:
        overrides = OverridesParser.create().parse_overrides(args)
    except HydraException as exc:
        raise ConfigError(f"cannot parse the command line: {str(exc).splitlines()[0]}") from None
    groups = config_groups()
    first: list[str] = []
    for o in overrides:
        key = o.key_or_group
        if key.startswith("hydra") or o.is_delete():
            first.append(o.input_line) if not key.startswith("hydra") else None
            continue
        values = list(o.sweep_iterator()) if o.is_sweep_override() else [o.value()]
        if key in groups:
            for v in values:
                _check_group_value(key, v)
        if o.is_sweep_override():
            v = values[0]
            prefix = "+" if o.is_add() else ("++" if o.is_force_add() else "")
            first.append(f"{prefix}{key}={_encode(v)}")
        else:
            first.append(o.input_line)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="preflight"):
        try:
            cfg = compose(config_name=config_name, overrides=first)
        except HydraException as exc:
            base = compose(config_name=config_name, overrides=[f for f in first if "=" in f and
                                                                f.split("=")[0] in groups])
            for o in overrides:
                if o.key_or_group not in groups and not o.is_add() and not o.is_force_add():
                    msg = _unknown_key_message(base, o.key_or_group)
                    if msg:
                        raise ConfigError(msg) from None
            raise ConfigError(" ".join(str(exc).split("\n")[:2]).strip()) from None
    from ganbench.search import apply_search

    apply_search(cfg)
    validate(cfg)
    multirun = any(a in ("-m", "--multirun") for a in argv)
    given = {o.key_or_group: o.value() for o in overrides if o.key_or_group.startswith("hydra")}
    if multirun:
        check_ddp_in_sweep(cfg, str(given.get("hydra/launcher", "basic")),
                           given.get("hydra.launcher.tasks_per_node", 1))
    if config_name == CONFIG_NAME:  # conf/train.yaml's layout: outputs/<name>/...
        key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
        check_output_dir(str(given.get(key, f"outputs/{cfg.name}")), key)


def check_output_dir(path: str, key: str) -> None:
    """Create the fixed part of the output directory now (Hydra would, with a traceback on failure): a read-only,
    full or missing place gets one line naming it and the key that moves it."""
    fixed = Path(path.split("${", 1)[0].rstrip("/") or ".")
    try:
        fixed.mkdir(parents=True, exist_ok=True)
        if not os.access(fixed, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    except OSError as exc:
        raise ConfigError(f"cannot write the output directory {fixed}: {exc.strerror or exc}; run where you can "
                          f"write, or set {key}=<a writable directory>") from None


def check_ddp_in_sweep(cfg: DictConfig, launcher: str, tasks_per_node: Any) -> None:
    """Lightning's DDP starts the extra ranks by re-running the command line, which inside a sweep would start the
    whole sweep again; in a sweep the ranks must be the launcher's tasks (slurm or local_parallel, one task per
    device)."""
    trainer = cfg.get("trainer") or {}
    strategy, devices = str(trainer.get("strategy", "auto")), trainer.get("devices", 1)
    multi = str(devices) in ("-1", "auto") or (str(devices).isdigit() and int(devices) > 1)
    if not (strategy.startswith("ddp") and multi):
        return
    if launcher not in ("slurm", "local_parallel") or str(tasks_per_node) != str(devices):
        raise ConfigError(f"trainer=ddp in a sweep needs one launcher task per device (Lightning would otherwise "
                          f"start each extra rank by relaunching the whole sweep): add hydra/launcher=slurm or "
                          f"local_parallel with hydra.launcher.tasks_per_node={devices}; got "
                          f"hydra/launcher={launcher}, tasks_per_node={tasks_per_node}")


def _encode(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_encode(x) for x in v) + "]"
    return str(v)


def run_cli(hydra_main: Callable[[], Any], config_name: str = CONFIG_NAME) -> None:
    """An entrypoint: check the command line (one line and exit code 2 on a bad option, value or key), then run
    the Hydra app."""
    import sys

    try:
        preflight(sys.argv[1:], config_name)
    except ConfigError as exc:
        print(f"ganbench: error: {exc}", file=sys.stderr)
        sys.exit(2)
    hydra_main()
