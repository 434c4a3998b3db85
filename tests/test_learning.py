"""A learning test that can fail: NS + spectral norm on ring8 must recover the modes; an untrained control must not.

The budget is counted in generator steps (1000, about 20 s on 2 CPU cores), not in seconds: timings vary on
shared machines, so this test asserts on what was learned, never on how long it took.
"""

from conftest import result

RING = ["model=mlp", "data=ring8", "loss=ns", "reg=sn", "logger=[csv]", "optim.batch_size=256", "optim.lr=0.0005",
        "optim.z_dim=16", "metrics.every=0", "samples.every=0", "checkpoint.every=0", "seed=0"]


def test_ns_with_spectral_norm_recovers_the_ring(run, tmp_path):
    code, out = run(*RING, "optim.g_steps=1000")
    assert code == 0, out[-2000:]
    r = result(tmp_path / "run")
    final = r["metrics"]["final"]
    assert r["status"] == "completed"
    assert final["toy/modes"] >= 7, final
    assert final["toy/hq_frac"] >= 0.2, final
    assert final["toy/reverse_kl"] < 0.2, final
    assert r["metrics"]["protocol"]["extractor"] == "toy"


def test_untrained_control_does_not(run, tmp_path):
    code, out = run(*RING, "optim.g_steps=1")
    assert code == 0, out[-2000:]
    final = result(tmp_path / "run")["metrics"]["final"]
    assert final["toy/modes"] < 7, final
