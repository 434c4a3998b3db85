"""InfoGAN (Chen et al. 2016): G sees latent codes c besides z, and a head Q on D's body recovers c from G(z, c);
the variational lower bound of the mutual information I(c; G(z, c)) is maximised by D and G together.

Reference: openai/InfoGAN@6e41232332672844f539c9fbf46d230f3d5b0699 (``infogan/algos/infogan_trainer.py``,
``infogan/models/regularized_gan.py``, ``infogan/misc/distributions.py``, ``launchers/run_mnist_exp.py``):

- codes: each categorical code uniform over its K values, fed to G one-hot (``Categorical``); each continuous code
  U(-1, 1) (``Uniform``, modelled by Q as a Gaussian). G's input is [z, one-hot codes, continuous codes].
- Q: ``D.features(x)`` -> fc 128 -> batch norm -> leaky ReLU (slope 0.01, openai's ``leaky_rectify``) -> fc to
  the codes' parameters (categorical logits; per continuous code a mean, and a log-variance with
  ``continuous_loss=learned``). Q belongs to D: D's optimizer trains it, and every regularizer that acts on D's
  weights (sn, wclip, l2) acts on it too.
- loss: openai subtracts lambda * MI_hat from both D's and G's loss, MI_hat = H(c) - CE with CE the cross-entropy
  -E[log Q(c | G(z, c))] on the fake batch of that step. H(c) does not depend on any weight, so ganbench adds
  lambda * CE (a constant lambda * H(c) away from openai's loss, the same gradients): ``info/cat_d``,
  ``info/cont_d`` in D's loss (D's body and Q get the gradient; G does not, the fakes are detached) and
  ``info/cat_g``, ``info/cont_g`` in G's (G gets it; D and Q are frozen in the G step).
  - categorical: CE of Q's logits (log-softmax; openai: log(softmax + 1e-8)), summed over codes.
  - continuous, ``fixed`` (openai's ``fix_std=True``, the default): unit variance, NLL = (c - mu)^2 / 2, summed
    over codes; ``learned``: NLL = log(sigma^2) / 2 + (c - mu)^2 / (2 sigma^2), sigma^2 = exp(log-variance) +
    1e-6 (the floor keeps the NLL above -inf when sigma -> 0; Natsu6767/InfoGAN-PyTorch ``utils.py``). Both drop
    openai's constant log(2 pi) / 2 per code. Means over the batch.
- Q sees the fakes as D sees them (augmented, packed). ``d_calls: separate`` (the default here) runs D on the reals
  and on the fakes in separate calls in both steps, as openai does, so the batch norms of D and Q see the fakes
  alone in the D step as in the G step; ``joint`` (one call in both steps) is consistent too; ``joint_in_d_step``
  (family=gan's default) normalizes Q's input over reals and fakes in the D step but over fakes alone in the G
  step. Penalties see the logit only (Q is not computed for them).

Packing (PacGAN, ``pack=m``): D scores packs of m samples; Q predicts the codes of each of the m samples of a pack
(its last layer outputs m x the code parameters; sample j of the pack gets block j), so every fake still has its
own code target.

Sample grid: ``callbacks.save_image_grid`` lays a grid out with floor(sqrt(n)) columns. Row r shows value r mod K
of the first categorical code, column j the first continuous code at -1 + 2 j / (columns - 1); z and the other
codes are shared by a block of K consecutive rows (one row per value) and drawn anew per block, so within a block
only the two swept codes change (openai varies one code per grid along rows with z fixed per column). Without a
continuous code the columns draw their own z; without a categorical code every row is its own block.

Metric: ``code_acc/<classifier>_<n>x<K>``: n samples per value of the first categorical code, classified (nearest
mode for toy mixtures, the domain classifier for digits/MNIST/Fashion-MNIST; other data: skipped with a log line),
accuracy after the best one-to-one code-to-class matching (``ganbench.metrics.codes``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganbench.errors import ConfigError
from ganbench.families.gan import GAN

log = logging.getLogger("ganbench")

Q_HIDDEN = 128  # openai: custom_fully_connected(128)
Q_SLOPE = 0.01  # openai's leaky_rectify
VARIANCE_FLOOR = 1e-6


# -- the formulas (pure functions) ---------------------------------------------------------------------------------

def categorical_nll(logits: Tensor, values: Tensor, sizes: Sequence[int]) -> Tensor:
    """Sum over the categorical codes of the mean cross-entropy -log Q(c_i | x); ``logits`` (N, sum(sizes)) holds
    the codes' logits side by side, ``values`` (N, len(sizes)) their integer values. MI_hat = H(c) - this, with
    H(c) = sum_i log K_i a constant."""
    parts = logits.split(list(sizes), dim=1)
    return sum(F.cross_entropy(part, values[:, i]) for i, part in enumerate(parts))


def fixed_variance_nll(mean: Tensor, c: Tensor) -> Tensor:
    """-log N(c; mean, 1) without its constant: (c - mean)^2 / 2 summed over codes, averaged over the batch."""
    return 0.5 * (c - mean).square().sum(1).mean()


def gaussian_nll(mean: Tensor, log_var: Tensor, c: Tensor) -> Tensor:
    """-log N(c; mean, sigma^2) without log(2 pi) / 2, sigma^2 = exp(log_var) + 1e-6, summed over codes and
    averaged over the batch; the floor keeps it finite (>= log(1e-6) / 2 per code) as sigma -> 0."""
    var = log_var.exp() + VARIANCE_FLOOR
    return 0.5 * (var.log() + (c - mean).square() / var).sum(1).mean()


@dataclass(frozen=True)
class ContinuousLoss:
    """Q's parameters per continuous code and the NLL of the codes given them ((N, codes * params), (N, codes))."""

    params: int
    nll: Callable[[Tensor, Tensor], Tensor]


CONTINUOUS_LOSSES: dict[str, ContinuousLoss] = {
    "fixed": ContinuousLoss(1, fixed_variance_nll),
    "learned": ContinuousLoss(2, lambda p, c: gaussian_nll(*p.chunk(2, dim=1), c)),
}


# -- options ------------------------------------------------------------------------------------------------------

def _plain(value):
    from omegaconf import DictConfig, ListConfig, OmegaConf

    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Codes:
    """InfoGAN's latent codes: categorical code sizes and the number of continuous codes."""

    categorical: tuple[int, ...]
    continuous: int

    @property
    def cat_dim(self) -> int:
        return sum(self.categorical)

    @property
    def dim(self) -> int:
        """How many inputs the codes add to G's."""
        return self.cat_dim + self.continuous

    @classmethod
    def parse(cls, codes) -> "Codes":
        codes = _plain(codes) or {}
        if not isinstance(codes, Mapping) or set(codes) - {"categorical", "continuous"}:
            raise ConfigError(f"family.codes takes categorical (a list of category counts) and continuous (a count);"
                              f" got {codes!r}")
        cat, cont = codes.get("categorical", []), codes.get("continuous", 0)
        if not isinstance(cat, (list, tuple)) or not all(_is_int(k) and k >= 2 for k in cat):
            raise ConfigError(f"family.codes.categorical must be a list of category counts, each an integer >= 2 "
                              f"(e.g. [10]; [] for none); got {cat!r}")
        if not _is_int(cont) or cont < 0:
            raise ConfigError(f"family.codes.continuous must be an integer >= 0 (the number of U(-1, 1) codes); "
                              f"got {cont!r}")
        if not cat and not cont:
            raise ConfigError("family=infogan needs at least one code: family.codes.categorical=[...] (category "
                              "counts) or family.codes.continuous > 0")
        return cls(tuple(cat), cont)


def parse_weights(info_weight) -> dict[str, float]:
    given = {} if info_weight is None else _plain(info_weight)
    if not isinstance(given, Mapping):
        raise ConfigError(f"family.info_weight takes categorical and continuous (e.g. family.info_weight."
                          f"continuous=0.1); got {given!r}")
    weights = {"categorical": 1.0, "continuous": 1.0, **given}
    if set(weights) != {"categorical", "continuous"}:
        raise ConfigError(f"family.info_weight takes categorical and continuous; got {sorted(weights)}")
    for kind, w in weights.items():
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not w >= 0 or not math.isfinite(w):
            raise ConfigError(f"family.info_weight.{kind} must be a finite number >= 0; got {w!r}")
    return {k: float(v) for k, v in weights.items()}


def parse_continuous_loss(name) -> ContinuousLoss:
    if name not in CONTINUOUS_LOSSES:
        raise ConfigError(f"family.continuous_loss must be one of {', '.join(CONTINUOUS_LOSSES)}; got {name!r}")
    return CONTINUOUS_LOSSES[name]


# -- D with Q -----------------------------------------------------------------------------------------------------

class InfoDiscriminator(nn.Module):
    """A ganbench discriminator (``body``) plus Q on ``body.features``. ``forward(x)`` returns {"logit": (P,),
    "q_cat": (P, m * cat_dim), "q_cont": (P, m * cont_dim)} for P packs of m samples (sample j's block j), or the
    logit alone with ``heads=False`` (the penalties' critic)."""

    def __init__(self, body: nn.Module, cat_dim: int, cont_dim: int, pack: int = 1):
        super().__init__()
        self.body = body
        self.feature_dim = body.feature_dim
        self.cat_dim, self.cont_dim, self.pack = int(cat_dim), int(cont_dim), int(pack)
        self.q = nn.Sequential(nn.Linear(body.feature_dim, Q_HIDDEN), nn.BatchNorm1d(Q_HIDDEN),
                               nn.LeakyReLU(Q_SLOPE), nn.Linear(Q_HIDDEN, self.pack * (self.cat_dim + self.cont_dim)))

    @property
    def head(self) -> nn.Linear:
        return self.body.head

    def features(self, x: Tensor) -> Tensor:
        return self.body.features(x)

    def forward(self, x: Tensor, heads: bool = True):
        h = self.body.features(x)
        logit = self.body.head(h).flatten()
        if not heads:
            return logit
        per_sample = self.q(h).reshape(len(h), self.pack, self.cat_dim + self.cont_dim)
        q_cat, q_cont = per_sample.split([self.cat_dim, self.cont_dim], dim=2)
        return {"logit": logit, "q_cat": q_cat.flatten(1), "q_cont": q_cont.flatten(1)}


# -- the family -----------------------------------------------------------------------------------------------------

class InfoGAN(GAN):
    """``family=infogan``: codes concatenated to z, Q on D's body, lambda * CE of the codes in D's and G's losses.

    Args (besides ``GAN``'s): codes ({"categorical": [K, ...], "continuous": C}), info_weight ({"categorical":
    lambda, "continuous": lambda}), continuous_loss ("fixed" | "learned"), code_samples (samples per value of the
    first categorical code in the code-accuracy metric).
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module, *args, codes=None, info_weight=None,
                 continuous_loss: str = "fixed", code_samples: int = 100, **kwargs):
        spec, weights, cont_loss = Codes.parse(codes), parse_weights(info_weight), parse_continuous_loss(
            continuous_loss)
        if not _is_int(code_samples) or code_samples < 1:
            raise ConfigError(f"family.code_samples must be an integer >= 1; got {code_samples!r}")
        super().__init__(generator, discriminator, *args, **kwargs)
        self.codes, self.info_weight, self.continuous_loss = spec, weights, cont_loss
        self.code_samples = int(code_samples)
        self._classifier = None  # (why skipped | None, CodeClassifier | None) once resolved
        self._metric_name: str | None = None

    @classmethod
    def build_networks(cls, cfg, datamodule, d_kwargs: dict, options: dict):
        """G takes z_dim + the codes' inputs; D is ``cfg.model``'s discriminator with Q on its features."""
        from ganbench.build import instantiate_or_explain

        codes = Codes.parse(options.get("codes"))
        parse_weights(options.get("info_weight"))
        cont_loss = parse_continuous_loss(options.get("continuous_loss", "fixed"))
        batch = int(cfg.optim.batch_size)
        m = cls.check_pack(options.get("pack", 1), batch)
        if batch // m < 2:
            raise ConfigError(f"family=infogan: Q's batch norm needs at least 2 packs per batch; got "
                              f"optim.batch_size={batch} with family.pack={m}")
        shape = tuple(datamodule.shape)
        G = instantiate_or_explain(cfg.model.generator, z_dim=int(cfg.optim.z_dim) + codes.dim, data_shape=shape)
        body = instantiate_or_explain(cfg.model.discriminator, data_shape=(shape[0] * m, *shape[1:]), **d_kwargs)
        return G, InfoDiscriminator(body, codes.cat_dim, codes.continuous * cont_loss.params, m), {}

    # -- G's inputs -------------------------------------------------------------------------------------------------
    def sample_inputs(self, n: int) -> dict[str, Tensor]:
        """z from the prior, then each categorical code uniform over its values, then the continuous codes
        U(-1, 1), all from the global random stream (checkpointed)."""
        z = self.sample_z(n)
        cat = [torch.randint(k, (n,), device=self.device) for k in self.codes.categorical]
        cat = torch.stack(cat, 1) if cat else torch.zeros(n, 0, dtype=torch.long, device=self.device)
        cont = torch.rand(n, self.codes.continuous, device=self.device) * 2 - 1
        return {"z": z, "cat": cat, "cont": cont}

    def generator_input(self, inputs: Mapping[str, Tensor]) -> Tensor:
        z = inputs["z"]
        onehot = [F.one_hot(inputs["cat"][:, i], k).to(z.dtype) for i, k in enumerate(self.codes.categorical)]
        return torch.cat([z, *onehot, inputs["cont"].to(z.dtype)], dim=1)

    def generate(self, inputs: Mapping[str, Tensor], net: nn.Module | None = None) -> Tensor:
        return (net if net is not None else self.G)(self.generator_input(inputs))

    def fixed_inputs(self) -> dict[str, Tensor]:
        """The grid (see the module's docstring): rows = first categorical code, columns = first continuous code."""
        n = len(self.fixed_z)
        cols = max(1, int(math.sqrt(n)))  # save_image_grid's nrow
        k = self.codes.categorical[0] if self.codes.categorical else 1
        index = torch.arange(n, device=self.fixed_z.device)
        row, col = index // cols, index % cols
        # which z / other codes a slot shares: its block of k rows (and its column without a continuous code)
        group = row // k if self.codes.continuous else (row // k) * cols + col
        drawn = self.random_codes(n, torch.Generator().manual_seed(self.seed + 1))
        inputs = {"z": self.fixed_z[group], "cat": drawn["cat"].to(index.device)[group],
                  "cont": drawn["cont"].to(index.device)[group]}
        if self.codes.categorical:
            inputs["cat"][:, 0] = row % k
        if self.codes.continuous:
            inputs["cont"][:, 0] = -1 + 2 * col.to(inputs["cont"].dtype) / max(1, cols - 1)
        return inputs

    def random_codes(self, n: int, generator: torch.Generator) -> dict[str, Tensor]:
        """Codes drawn from a given generator (the grid's own stream), on the CPU."""
        cat = [torch.randint(k, (n,), generator=generator) for k in self.codes.categorical]
        return {"cat": torch.stack(cat, 1) if cat else torch.zeros(n, 0, dtype=torch.long),
                "cont": torch.rand(n, self.codes.continuous, generator=generator) * 2 - 1}

    # -- D's side ---------------------------------------------------------------------------------------------------
    def discriminate_pair(self, real, real_cond, fake, fake_cond, joint: bool = True):
        """With separate calls Q is not run on the reals (only fakes have codes to recover); one joint call runs it
        on both (its batch norm then sees both, as D's)."""
        if joint:
            return super().discriminate_pair(real, real_cond, fake, fake_cond, joint)
        return self.discriminate(real, {**real_cond, "heads": False}), self.discriminate(fake, fake_cond)

    def penalty_critic(self, real_cond, fake_cond):
        return lambda x: self.critic(x, {"heads": False})

    # -- the mutual-information terms -------------------------------------------------------------------------------
    def info_terms(self, out: Mapping[str, Tensor], inputs: Mapping[str, Tensor], who: str) -> dict[str, Tensor]:
        """lambda * CE of the codes that generated the fakes, under Q's prediction from D's output on them (in
        float32, also under mixed precision)."""
        terms = {}
        if self.codes.categorical:
            logits = out["q_cat"].float().reshape(-1, self.codes.cat_dim)
            terms[f"info/cat_{who}"] = self.info_weight["categorical"] * categorical_nll(
                logits, inputs["cat"], self.codes.categorical)
        if self.codes.continuous:
            params = out["q_cont"].float().reshape(-1, self.codes.continuous * self.continuous_loss.params)
            terms[f"info/cont_{who}"] = self.info_weight["continuous"] * self.continuous_loss.nll(
                params, inputs["cont"].float())
        return terms

    def d_terms(self, real_out, fake_out, real_cond, inputs):
        return self.info_terms(fake_out, inputs, "d")

    def g_terms(self, fake, fake_out, inputs):
        return self.info_terms(fake_out, inputs, "g")

    # -- the code-accuracy metric -----------------------------------------------------------------------------------
    def code_classifier(self, evaluator):
        """The metric's classifier for this data (built once), or None with the reason logged once."""
        if self._classifier is None:
            from ganbench.metrics.codes import code_classifier

            clf = code_classifier(evaluator.datamodule, evaluator.cache_dir) if self.codes.categorical else None
            why = None
            if clf is None:
                why = ("there is no categorical code" if not self.codes.categorical else
                       f"data={evaluator.datamodule.name} has neither modes nor a domain classifier")
                log.info("family=infogan: code accuracy skipped: %s", why)
            self._classifier = (why, clf)
        return self._classifier[1]

    def extra_metrics(self, evaluator) -> dict[str, float]:
        """Accuracy of the first categorical code as a class label, after the best code-to-class matching."""
        from ganbench.metrics.codes import matched_accuracy
        from ganbench.metrics.evaluator import count_label

        clf = self.code_classifier(evaluator)
        if clf is None:
            return {}
        k, n = self.codes.categorical[0], self.code_samples
        inputs = self.sample_inputs(n * k)
        values = torch.arange(k, device=self.device).repeat_interleave(n)
        inputs["cat"][:, 0] = values
        with torch.no_grad():
            predicted = clf.classify(self.sample(inputs=inputs, batch_size=evaluator.batch_size))
        self._metric_name = f"code_acc/{clf.kind}_{count_label(n)}x{k}"
        return {self._metric_name: matched_accuracy(values, predicted, k, clf.num_classes)}

    def extra_protocol(self) -> dict:
        if not self.codes.categorical:
            return {}
        proto = {"samples_per_code": self.code_samples, "code_values": self.codes.categorical[0],
                 "matching": "hungarian (one-to-one, scipy linear_sum_assignment)"}
        why, clf = self._classifier or (None, None)
        if why is not None:
            proto["skipped"] = why
        if clf is not None:
            proto.update(name=self._metric_name, classes=clf.num_classes, **clf.info)
        return {"code_accuracy": proto}
