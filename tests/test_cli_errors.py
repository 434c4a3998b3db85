"""Bad input on the command line: one line naming what is wrong and what is allowed, a non-zero exit, no
traceback, nothing recorded as completed."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import TOY

# (overrides, words the one-line error must contain)
PREFLIGHT = [
    (["loss=foo"], ["loss=foo", "hinge", "ns", "wgan"]),
    (["reg=[gp,foo]"], ["reg=foo", "dragan"]),
    (["model=nope"], ["model=nope", "sndcgan"]),
    (["data=nope"], ["data=nope", "digits"]),
    (["augment=flip"], ["augment=flip", "diffaug"]),
    (["-m", "loss=ns,typo"], ["loss=typo"]),
    (["loss=[ns,wgan]"], ["loss takes one option"]),
    (["optim.lr=0"], ["optim.lr", "> 0"]),
    (["optim.lr=abc"], ["optim.lr", "number", "abc"]),
    (["optim.n_disc=0"], ["optim.n_disc", ">= 1"]),
    (["optim.n_disc=1.5"], ["optim.n_disc", "integer"]),
    (["optim.batch_size=0"], ["optim.batch_size", ">= 1"]),
    (["optim.beta1=1.5"], ["optim.beta1", "[0, 1)"]),
    (["optim.prior=cauchy"], ["optim.prior", "normal"]),
    (["optim.g_steps=-5"], ["optim.g_steps"]),
    (["ema.decay=1"], ["ema.decay"]),
    (["optim.foo=1"], ["optim.foo", "no such key", "n_disc"]),
    (["reg=[bn,ln]"], ["reg", "bn, ln"]),
    (["optim.lr="], ["optim.lr"]),
    (["-m", "trainer=ddp", "loss=ns,wgan"], ["trainer=ddp in a sweep", "hydra/launcher=slurm", "tasks_per_node=2"]),
    (["-m", "trainer=ddp", "loss=ns,wgan", "hydra/launcher=local_parallel"], ["tasks_per_node=1"]),
    (["trainer=ddp", "trainer.strategy=ddp_spawn"], ["trainer.strategy=ddp_spawn is not supported", "trainer=ddp"]),
    (["family=nope"], ["family=nope", "gan"]),
    (["reg=gp", "reg.gp.weight=inf"], ["reg.gp.weight", "finite", "inf"]),
    (["trainer=gpu"], ["no GPU found", "trainer=cpu"]),
]

# errors found once the job builds its parts (torch imported): still one line and exit 2
IN_JOB = [
    (["reg=gp", "reg.gp.weight=-1"], ["reg.gp.weight", ">= 0"]),
    (["optim.lr=nan"], ["optim.lr", "finite", "nan"]),
    (["reg=sn", "reg.sn.power_iterations=0"], ["reg.sn.power_iterations", ">= 1"]),
    (["model.generator.width=0"], ["model.generator.width", ">= 1"]),
    (["model=dcgan", "data=ring8"], ["model=dcgan", "square images"]),
    (["model=resnet19", "data=digits"], ["model=resnet19", "16x16"]),
    (["model=mlp", "data=digits"], ["model=mlp"]),
    (["data=cifar10", "model=sndcgan"], ["data=cifar10", "download=true"]),
    (["data=folder", "data.root=/nonexistent/imgs"], ["/nonexistent/imgs"]),
    (["augment=diffaug", "model=mlp", "data=ring8"], ["augment=diffaug", "augment=none"]),
    (["optim.batch_size=5000"], ["optim.batch_size=5000", "1437"]),
    (["logger=[wandb]", "logger.wandb.mode=sometimes"], ["logger.wandb.mode", "offline"]),
]


def _check(p, words, run_dir):
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    lines = [ln for ln in p.stderr.strip().splitlines() if ln.startswith("ganbench: error:")]
    assert len(lines) == 1, p.stderr[-2000:]
    assert "Traceback" not in p.stderr, p.stderr[-2000:]
    for w in words:
        assert w in lines[0], (w, lines[0])
    rec = run_dir / "result.json"
    if rec.exists():
        assert json.loads(rec.read_text())["status"] == "failed"


@pytest.mark.parametrize("overrides,words", PREFLIGHT, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_preflight_errors(cli, tmp_path, overrides, words):
    multirun = overrides[0] == "-m"
    p = cli("logger=[csv]", "metrics=none", *[o for o in overrides if o != "-m"], multirun=multirun, timeout=60)
    _check(p, words, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # nothing started


@pytest.mark.parametrize("overrides,words", IN_JOB, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_errors_found_in_the_job(run, tmp_path, overrides, words):
    """In-process (the same main() as the console script; the subprocess path is covered by the preflight cases)."""
    code, out = run("logger=[csv]", "metrics=none", "optim.g_steps=1", *overrides, env={"HOME": str(tmp_path)})
    _check(subprocess.CompletedProcess([], code, "", out), words, tmp_path / "run")
