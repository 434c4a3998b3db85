"""Score a training checkpoint, or a folder of generated images, under any metrics protocol.

    python -m ganbench.evaluate checkpoint=outputs/train/default/checkpoints/best.ckpt [metrics=kurach]
    python -m ganbench.evaluate images=DIR data=cifar10 data.root=~/data metrics=kurach
    python -m ganbench.evaluate checkpoint=<pix2pix|cyclegan|srgan run>/checkpoints/best.ckpt [test_dir=DIR]

(also installed as ``ganbench-evaluate``). Prints every score and writes a JSON record holding the same
``metrics`` block as a run's result.json (primary metric, protocol, values), plus what was scored. The
image-to-image families (test folders, their own primary metric, metrics=none): ganbench/evaluate_translation.py.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from ganbench import results
from ganbench.analyze.table import higher_is_better
from ganbench.config import CONF_DIR, run_cli
from ganbench.errors import CheckpointError, ConfigError, GanbenchError

log = logging.getLogger("ganbench")
CONFIG_NAME = "evaluate"


def checkpoint_sampler(path: Path, data_override: DictConfig | None, test_dir: str | None = None):
    """(datamodule, module, source info, the run's config) for a checkpoint: the run's config.yaml rebuilds the
    family's module (on ``data_override``, or on the test folder ``test_dir`` for the image-to-image families),
    the checkpoint's weights are loaded, and samples come from its evaluation (EMA) generator."""
    from ganbench import evaluate_translation as translation
    from ganbench.build import build
    from ganbench.checkpoints import read_checkpoint

    ckpt = read_checkpoint(path)
    run_dir = path.resolve().parent.parent
    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        raise CheckpointError(f"checkpoint {path}: no config.yaml in its run directory {run_dir} (ganbench keeps "
                              f"checkpoints in <run>/checkpoints/); copy the run's config.yaml there")
    run_cfg = OmegaConf.load(config_file)
    if test_dir:
        data_override = translation.test_folder_config(run_cfg, test_dir)
    if data_override is not None:
        run_cfg.data = data_override
    run_cfg.metrics = None  # the protocol is this command's, not the run's
    module, dm, _ = build(run_cfg)
    state = ckpt["state_dict"]
    if data_override is not None:  # the sample-grid inputs come from the new data
        state = translation.keep_data_buffers(state, module)
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {path} does not match the model in {config_file} "
                              f"({str(exc).splitlines()[0]})") from None
    module.eval()
    source = {"checkpoint": str(path), "run_dir": str(run_dir), "g_step": ckpt["ganbench"].get("g_step"),
              "generator": "ema" if module.G_ema is not None else "G"}
    if test_dir:
        source["test_dir"] = str(Path(test_dir).expanduser())
    return dm, module, source, run_cfg


def folder_sampler(root: Path, dm, count: int) -> tuple[Callable[[int], torch.Tensor], dict]:
    """sample_fn returning the folder's images in sorted order (resized like the data), and source info."""
    from ganbench.data.folder import ImageFiles, list_images
    from ganbench.data.vision import image_transform

    if not root.is_dir():
        raise ConfigError(f"images={root}: no such directory")
    files = list_images(root)
    if len(files) < count:
        raise ConfigError(f"images={root} holds {len(files)} images; the protocol scores metrics.num_fake={count} "
                          f"(generate more, or set metrics.num_fake<={len(files)})")
    channels, side = dm.shape[0], dm.shape[-1]
    images = ImageFiles(files[:count], "RGB" if channels == 3 else "L", image_transform(side, crop="square"))
    order: Iterator[int] = iter(range(count))

    def sample(n: int) -> torch.Tensor:
        return torch.stack([images[next(order)][0] for _ in range(n)])

    return sample, {"images": str(root), "num_files": len(files), "resized_to": side}


def default_record_path(cfg: DictConfig, source: dict, tag: str) -> Path:
    if cfg.checkpoint:
        on = f"-{Path(source['test_dir']).resolve().name}" if source.get("test_dir") else ""
        return Path(source["run_dir"]) / "evaluations" / f"{Path(cfg.checkpoint).stem}{on}-{tag}.json"
    return Path("outputs") / "evaluate" / f"{Path(cfg.images).resolve().name}-{tag}.json"


def evaluate(cfg: DictConfig) -> dict:
    """Score what ``cfg`` names; returns the record written to disk."""
    from ganbench import evaluate_translation as translation
    from ganbench.build import instantiate_or_explain

    if bool(cfg.checkpoint) == bool(cfg.images):
        raise ConfigError("give exactly one of checkpoint=PATH (a ganbench checkpoint) or images=DIR (generated "
                          "images, with data=<the dataset to compare against>)")
    test_dir = cfg.get("test_dir")
    if test_dir and not cfg.checkpoint:
        raise ConfigError(f"test_dir={test_dir} scores a checkpoint on a folder of test images: give "
                          f"checkpoint=PATH (a pix2pix, cyclegan or srgan run's) with it")
    if not cfg.get("metrics") and not cfg.checkpoint:
        raise ConfigError("metrics=none scores nothing; pick a protocol: metrics=quick, kurach, lucic or full")
    start = time.perf_counter()
    run_cfg = None
    if cfg.checkpoint:
        explicit_data = any(o.split("=")[0].lstrip("+~").split(".")[0] == "data"
                            for o in HydraConfig.get().overrides.task)
        if explicit_data and test_dir:
            raise ConfigError(f"give test_dir={test_dir} or data=..., not both (test_dir builds the data itself)")
        dm, module, source, run_cfg = checkpoint_sampler(Path(cfg.checkpoint).expanduser(),
                                                         cfg.data if explicit_data else None, test_dir)
        sample_fn = module.sample
    else:
        dm = instantiate_or_explain(cfg.data)
        module = sample_fn = source = None
    if not cfg.get("metrics"):
        if not translation.is_translation(run_cfg):
            raise ConfigError("metrics=none scores nothing for this checkpoint (only the image-to-image families "
                              "have metrics of their own); pick a protocol: metrics=quick, kurach, lucic or full")
        cache = os.environ.get("GANBENCH_CACHE") or "~/.cache/ganbench"
        evaluator = translation.FamilyMetricsOnly(dm, cache_dir=f"{cache}/metrics")
    else:
        evaluator = instantiate_or_explain(cfg.metrics, datamodule=dm)
    if cfg.images:
        sample_fn, source = folder_sampler(Path(cfg.images).expanduser(), dm, evaluator.num_fake)
    evaluator.setup()
    torch.manual_seed(int(cfg.seed))  # after setup (which may draw from the global RNG): the same latents every time
    values = evaluator.evaluate(sample_fn)
    protocol = evaluator.protocol()
    if module is not None:  # the family's own metrics (conditional: intra-FID, class accuracy; InfoGAN: codes)
        values.update(module.extra_metrics(evaluator))
        if module.extra_protocol():
            protocol["family"] = module.extra_protocol()
    primary = evaluator.primary
    if run_cfg is not None:
        primary, values = translation.order_values(values, run_cfg, primary)
    tag = (evaluator.primary or primary).split("/", 1)[-1]
    record = {"schema_version": results.SCHEMA_VERSION, "kind": "evaluation", "source": source,
              "data": dm.name, "metrics": {"primary": primary, "higher_is_better": higher_is_better(primary),
                                           "protocol": protocol, "final_step": source.get("g_step"),
                                           "final": values},
              "eval_time_s": round(time.perf_counter() - start, 3), "finished": results.now(),
              "versions": results.package_versions(), "git_commit": results.git_commit()}
    path = Path(cfg.out).expanduser() if cfg.out else default_record_path(cfg, source, tag)
    path.parent.mkdir(parents=True, exist_ok=True)
    results.write_json_atomic(path, record)
    record["path"] = str(path)
    width = max((len(k) for k in values), default=0)
    for key, value in values.items():
        print(f"{key:<{width}}  {value:.6g}")
    print(f"record: {path}")
    return record


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=CONFIG_NAME)
def hydra_main(cfg: DictConfig) -> None:
    try:
        evaluate(cfg)
    except GanbenchError as exc:
        print(f"ganbench: error: {exc}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    run_cli(hydra_main, CONFIG_NAME)


if __name__ == "__main__":
    main()
