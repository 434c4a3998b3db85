"""``augment=ada``: adaptive discriminator augmentation (Karras et al. 2020, "Training Generative Adversarial
Networks with Limited Data").

Every image D sees (real and fake, D and G step, inside the penalties' critic) goes through the same pipeline as
StyleGAN2-ADA's ``AugmentPipe`` [NVlabs/stylegan2-ada-pytorch@d72cc7d training/augment.py]: each op fires per
sample with probability ``multiplier * p`` and draws its parameter per sample, in AugmentPipe's order

    blit:   xflip (i in {0, 1}), rotate90 (i in {0..3} quarter turns), xint (t ~ U(-0.125, 0.125) * side, rounded)
    geom:   scale (2^N(0, 0.2)), rotate (U(-pi, pi), before and after aniso, each with p_rot = 1 - sqrt(1 - m p)),
            aniso (2^N(0, 0.2) on x, its inverse on y), xfrac (N(0, 0.125) * side): ganbench/ada_geometric.py
    color:  brightness (b ~ N(0, 0.2), added), contrast (c = 2^N(0, 0.5), x * c: about 0, the grey of [-1, 1]),
            lumaflip (Householder reflection about the luma axis v = (1, 1, 1) / sqrt 3),
            hue (rotation by U(-pi, pi) about v), saturation (s = 2^N(0, 1): v v^T + (I - v v^T) s)
    noise:  x + N(0, sigma^2), sigma ~ |N(0, 0.1)|
    cutout: zero a square of half the side at a uniform centre

with the same random draws in the same order (so the same seed gives AugmentPipe's parameters). The colour ops
compose into one 4x4 matrix per sample. On 1-channel images AugmentPipe skips hue and saturation (identity on
grey) and applies the average row of the matrix: brightness and contrast as on RGB, and lumaflip becomes x -> -x
(the reflection of a grey pixel (y, y, y) is (-y, -y, -y)).

The adaptive p [training/training_loop.py L172-178, L312-315 at the same commit]: after every D step ``observe``
adds the signs of D's logits on the augmented reals; every ``interval`` D steps

    r_t = E[sign(D(x_real))],   p <- clamp(p + sign(r_t - target) * batch * interval / (kimg * 1000), 0, 1)

(the official code clamps at 0 only; p > 1 leaks augmentations, NVlabs/stylegan2-ada-pytorch#175, so ganbench
clamps to [0, 1] like StudioGAN). Under DDP the sign sums are all-reduced and ``batch`` is the global batch. p,
r_t, the sign sums and the D-step counter are buffers: they are in the checkpoint and resume exactly.

The geometric ops compose with the integer shift into one inverse matrix per sample, resampled once as
AugmentPipe does (reflect pad, sym6 2x up, grid_sample, sym6 2x down; ganbench/ada_geometric.py). torch's
grid_sample has the double backward R1 needs, so R1/R2/GP see gradients through them (tested). Not built:
imgfilter ('filter'), refused in one line.

xflip and rotate90 are exact index maps applied first, and without geometric ops so is xint: AugmentPipe pads
with reflection before resampling, so an integer shift here reads reflected pixels (torch 'reflect': the edge is
not repeated). Checked against AugmentPipe on CPU with the same seed: colour, noise and cutout agree bitwise, xint
to 1e-6, the geometric ops (with xint and colour) to 2e-6 on 16-32 px images; AugmentPipe's xflip and rotate90
differ from the exact flip/rotation by its resampling (the sym6 wavelet is not symmetric, so the mirrored image is
low-passed: rms 0.006-0.02 on smooth images, 0.1 on white noise), which index ops avoid. A batch in which no
geometric op fired is not resampled (AugmentPipe resamples it whenever a geometric op is enabled: identity to
1e-6).

Why hand-written and not kornia (0.9.0, not installed): kornia's colour ops are defined differently (HSV hue and
saturation, multiplicative brightness, clamping to [0, 1], which also zeroes gradients), it has no lumaflip, and
its flips/translations go through a warp; AugmentPipe's definitions are a few lines each, elementwise (no TF32
rounding from matmuls), and need no new dependency.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ganbench import ada_geometric as geometric
from ganbench.augment import DiffAugment
from ganbench.errors import ConfigError

# AugmentPipe's default strengths [training/augment.py::AugmentPipe.__init__]
XINT_MAX, BRIGHTNESS_STD, CONTRAST_STD, HUE_MAX, SATURATION_STD, NOISE_STD, CUTOUT_SIZE = \
    0.125, 0.2, 0.5, 1.0, 1.0, 0.1, 0.5

GROUPS: dict[str, tuple[str, ...]] = {  # train.py::augpipe_specs
    "blit": ("xflip", "rotate90", "xint"),
    "geom": geometric.OPS,  # scale, rotate, aniso, xfrac: ganbench/ada_geometric.py
    "color": ("brightness", "contrast", "lumaflip", "hue", "saturation"),
    "noise": ("noise",),
    "cutout": ("cutout",),
}
OPS: tuple[str, ...] = tuple(op for ops in GROUPS.values() for op in ops)
NOT_BUILT = ("filter", "imgfilter")  # AugmentPipe's image-space filtering


# -- blit: exact index maps ------------------------------------------------------------------------------------------
def xflip(x: Tensor, i: Tensor) -> Tensor:
    """Mirror the samples with i == 1 left-right."""
    return torch.where(i.view(-1, 1, 1, 1) > 0, x.flip(3), x)


def rotate90(x: Tensor, k: Tensor) -> Tensor:
    """Rotate sample n by k[n] quarter turns (torch.rot90 on (H, W), AugmentPipe's direction). Square images."""
    out = x
    for turns in (1, 2, 3):
        out = torch.where(k.view(-1, 1, 1, 1) == turns, torch.rot90(x, turns, dims=(2, 3)), out)
    return out


def _reflect(i: Tensor, size: int) -> Tensor:
    """Index into a reflect-padded axis (edge not repeated) for i in [-(size-1), 2 (size-1)]."""
    i = i.abs()
    return torch.where(i > size - 1, 2 * (size - 1) - i, i)


def translate(x: Tensor, tx: Tensor, ty: Tensor) -> Tensor:
    """out[n, :, y, x] = in[n, :, y - ty[n], x - tx[n]] (integer shifts, |t| < side), reflecting at the border."""
    n, c, h, w = x.shape
    rows = _reflect(torch.arange(h, device=x.device).view(1, h, 1) - ty.view(n, 1, 1).long(), h)
    cols = _reflect(torch.arange(w, device=x.device).view(1, 1, w) - tx.view(n, 1, 1).long(), w)
    index = (rows * w + cols).view(n, 1, h * w).expand(-1, c, -1)
    return x.flatten(2).gather(2, index).view_as(x)


# -- color: one 4x4 matrix per sample (homogeneous RGB) --------------------------------------------------------------
LUMA = torch.tensor([1.0, 1.0, 1.0, 0.0]) / math.sqrt(3)


_mm = geometric.mm  # batched small matmul, elementwise


def _eye(n: int, ref: Tensor) -> Tensor:
    return torch.eye(4, device=ref.device, dtype=ref.dtype).expand(n, 4, 4)


def brightness_matrix(b: Tensor) -> Tensor:
    """Add b[n] to every channel."""
    m = _eye(len(b), b).clone()
    m[:, :3, 3] = b.view(-1, 1)
    return m


def contrast_matrix(c: Tensor) -> Tensor:
    """Multiply every channel by c[n]."""
    return torch.diag_embed(torch.stack([c, c, c, torch.ones_like(c)], dim=1))


def lumaflip_matrix(i: Tensor) -> Tensor:
    """I - 2 v v^T where i[n] == 1 (Householder reflection of the luma component), else I."""
    vv = torch.outer(LUMA, LUMA).to(i)
    return _eye(len(i), i) - 2 * vv * i.view(-1, 1, 1)


def hue_matrix(theta: Tensor) -> Tensor:
    """Rotation by theta[n] about the luma axis (Rodrigues: c I + s [v]x + (1 - c) v v^T)."""
    x, y, z = LUMA[:3].tolist()
    cross = torch.tensor([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]]).to(theta)
    v = LUMA[:3].to(theta)
    c, s = theta.cos().view(-1, 1, 1), theta.sin().view(-1, 1, 1)
    m = _eye(len(theta), theta).clone()
    m[:, :3, :3] = c * torch.eye(3).to(theta) + s * cross + (1 - c) * torch.outer(v, v)
    return m


def saturation_matrix(s: Tensor) -> Tensor:
    """v v^T + (I - v v^T) s[n]: keep luma, scale the chroma by s."""
    vv = torch.outer(LUMA, LUMA).to(s)
    return vv + (_eye(len(s), s) - vv) * s.view(-1, 1, 1)


def apply_color(x: Tensor, m: Tensor) -> Tensor:
    """RGB: out_c = sum_j m[c, j] x_j + m[c, 3]. Grey (AugmentPipe): the mean of the 3 rows, x * sum + offset."""
    if x.shape[1] == 3:
        return (m[:, :3, :3, None, None] * x[:, None]).sum(2) + m[:, :3, 3, None, None]
    row = m[:, :3, :].mean(dim=1)
    return x * row[:, :3].sum(1).view(-1, 1, 1, 1) + row[:, 3].view(-1, 1, 1, 1)


# -- corruptions -----------------------------------------------------------------------------------------------------
def add_noise(x: Tensor, sigma: Tensor) -> Tensor:
    """x + N(0, sigma[n]^2) per pixel."""
    return x + torch.randn_like(x) * sigma.view(-1, 1, 1, 1)


def cutout(x: Tensor, center: Tensor, size: Tensor) -> Tensor:
    """Zero the pixels whose centre lies within size[n]/2 of center[n] = (cx, cy) in [0, 1]^2 on both axes."""
    _, _, h, w = x.shape
    cx, cy, half = center[:, 0].view(-1, 1, 1), center[:, 1].view(-1, 1, 1), size.view(-1, 1, 1) / 2
    u = ((torch.arange(w, device=x.device) + 0.5) / w).view(1, 1, w)
    v = ((torch.arange(h, device=x.device) + 0.5) / h).view(1, h, 1)
    keep = ((u - cx).abs() >= half) | ((v - cy).abs() >= half)
    return x * keep.unsqueeze(1).to(x.dtype)


# -- the module ------------------------------------------------------------------------------------------------------
def op_multipliers(ops: Sequence[str], multipliers: Mapping[str, float] | None) -> dict[str, float]:
    """Probability multiplier per op: 1 for the ops of the listed groups (or listed ops), then ``multipliers``."""
    if isinstance(ops, str):
        ops = [ops]
    out = dict.fromkeys(OPS, 0.0)
    for name in ops:
        if name in NOT_BUILT:
            raise ConfigError(f"augment.ops: {name!r} (AugmentPipe's imgfilter) is not implemented; allowed: "
                              f"{', '.join([*GROUPS, *OPS])}")
        if name not in GROUPS and name not in OPS:
            raise ConfigError(f"augment.ops: unknown {name!r}; allowed groups {', '.join(GROUPS)} or ops "
                              f"{', '.join(OPS)}")
        out.update(dict.fromkeys(GROUPS.get(name, (name,)), 1.0))
    for name, value in (multipliers or {}).items():
        if name not in OPS or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"augment.multipliers: {name}={value!r}; allowed: a number >= 0 for an op in "
                              f"{', '.join(OPS)}")
        out[name] = float(value)
    return out


def _check(key: str, value, ok: bool, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"augment.{key}={value!r}; allowed: {allowed}")


class ADA(nn.Module):
    """AugmentPipe's blit, geometric, colour, noise and cutout ops at probability p, p adapted to r_t (module doc).

    Args: adaptive (adapt p, else p stays fixed), p (initial / fixed probability), target (r_t target), interval
    (D steps between updates), kimg (thousands of images for p to move by 1), batch_size (images per D step),
    ops (groups or single ops at multiplier 1; the default is AugmentPipe's 'bgc'), multipliers (per-op
    overrides), diffaug (a DiffAugment policy applied after ADA, e.g. [translation, cutout], or null).
    """

    def __init__(self, adaptive: bool = True, p: float = 0.0, target: float = 0.6, interval: int = 4,
                 kimg: float = 500, batch_size: int = 64, ops: Sequence[str] = ("blit", "geom", "color"),
                 multipliers: Mapping[str, float] | None = None, diffaug: Sequence[str] | None = None):
        super().__init__()
        _check("p", p, isinstance(p, (int, float)) and 0 <= p <= 1, "a probability in [0, 1]")
        _check("target", target, isinstance(target, (int, float)) and 0 < target < 1, "a number in (0, 1)")
        _check("interval", interval, isinstance(interval, int) and interval >= 1, "an integer >= 1 (D steps)")
        _check("kimg", kimg, isinstance(kimg, (int, float)) and kimg > 0, "a number > 0 (thousands of images)")
        _check("batch_size", batch_size, isinstance(batch_size, int) and batch_size >= 1, "an integer >= 1")
        self.adaptive, self.target, self.interval = bool(adaptive), float(target), interval
        self.step_size = batch_size * interval / (kimg * 1000)  # times the world size under DDP
        self.multipliers = op_multipliers(list(ops), multipliers)
        self.diffaug = DiffAugment(list(diffaug)) if diffaug else None
        self.register_buffer("p", torch.tensor(float(p)))
        self.register_buffer("rt", torch.tensor(0.0))  # r_t of the last completed interval (0 before the first)
        self.register_buffer("sign_sum", torch.tensor(0.0))
        self.register_buffer("sign_count", torch.tensor(0.0))
        self.register_buffer("d_steps", torch.tensor(0, dtype=torch.long))

    # -- adaptation ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def observe(self, real_logits: Tensor) -> None:
        """Accumulate sign(D(x_real)); every ``interval`` calls update r_t and (adaptive) p. No host sync."""
        signs = real_logits.detach().float().sign()
        seen = torch.stack([signs.sum(), torch.tensor(float(signs.numel()), device=signs.device)])
        world = 1
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(seen)
            world = dist.get_world_size()
        self.sign_sum += seen[0]
        self.sign_count += seen[1]
        self.d_steps += 1
        due = self.d_steps % self.interval == 0
        rt = self.sign_sum / self.sign_count.clamp(min=1)
        self.rt.copy_(torch.where(due, rt, self.rt))
        if self.adaptive:
            moved = (self.p + torch.sign(rt - self.target) * self.step_size * world).clamp(0, 1)
            self.p.copy_(torch.where(due, moved, self.p))
        self.sign_sum.copy_(torch.where(due, torch.zeros_like(rt), self.sign_sum))
        self.sign_count.copy_(torch.where(due, torch.zeros_like(rt), self.sign_count))

    def scalars(self) -> dict[str, float]:
        return {"ada/p": float(self.p), "ada/rt": float(self.rt)}

    # -- augmentation --------------------------------------------------------------------------------------------
    def _fires(self, op: str, *shape: int, device) -> Tensor:
        return torch.rand(*shape, device=device) < self.multipliers[op] * self.p

    def _blit(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """xflip and rotate90 applied; the integer shift (N, 2) in pixels (or None) is left to ``_geometric``."""
        n, _, h, w = x.shape
        m, dev = self.multipliers, x.device
        if m["xflip"] > 0:
            i = torch.floor(torch.rand(n, device=dev) * 2)
            x = xflip(x, torch.where(self._fires("xflip", n, device=dev), i, torch.zeros_like(i)))
        if m["rotate90"] > 0:
            if h != w:
                raise ConfigError(f"augment.ops: rotate90 needs square images; got {h}x{w} (set "
                                  "augment.multipliers.rotate90=0)")
            k = torch.floor(torch.rand(n, device=dev) * 4)
            x = rotate90(x, torch.where(self._fires("rotate90", n, device=dev), k, torch.zeros_like(k)))
        if m["xint"] > 0:
            t = (torch.rand(n, 2, device=dev) * 2 - 1) * XINT_MAX
            t = torch.where(self._fires("xint", n, 1, device=dev), t, torch.zeros_like(t))
            return x, torch.stack([torch.round(t[:, 0] * w), torch.round(t[:, 1] * h)], dim=1)
        return x, None

    def _geometric(self, x: Tensor, shift: Tensor | None) -> Tensor:
        """Without geometric ops: the integer shift as an exact reflecting index map. With them: one resampling of
        G_inv = T(-shift) G_geom (AugmentPipe's composition; integer shifts stay exact to float rounding)."""
        n, _, h, w = x.shape
        if not any(self.multipliers[op] > 0 for op in geometric.OPS):
            return x if shift is None else translate(x, shift[:, 0], shift[:, 1])
        g_inv = geometric.draw_matrix(n, self.p, self.multipliers, h, w, x.device)
        if shift is not None:
            g_inv = _mm(geometric.translate_matrix(-shift[:, 0], -shift[:, 1]), g_inv)
        return geometric.transform(x, g_inv)

    def _color(self, x: Tensor) -> Tensor:
        n, c = x.shape[:2]
        m, dev = self.multipliers, x.device
        ops = [op for op in GROUPS["color"] if m[op] > 0 and (c > 1 or op not in ("hue", "saturation"))]
        if not ops:
            return x
        if c not in (1, 3):
            raise ConfigError(f"augment.ops: the color ops need 1 or 3 channels; got {c} (drop 'color')")
        draws = {  # (parameter, its value when the op does not fire, the matrix)
            "brightness": (lambda: torch.randn(n, device=dev) * BRIGHTNESS_STD, 0.0, brightness_matrix),
            "contrast": (lambda: torch.exp2(torch.randn(n, device=dev) * CONTRAST_STD), 1.0, contrast_matrix),
            "lumaflip": (lambda: torch.floor(torch.rand(n, device=dev) * 2), 0.0, lumaflip_matrix),
            "hue": (lambda: (torch.rand(n, device=dev) * 2 - 1) * math.pi * HUE_MAX, 0.0, hue_matrix),
            "saturation": (lambda: torch.exp2(torch.randn(n, device=dev) * SATURATION_STD), 1.0, saturation_matrix),
        }
        mat = _eye(n, x)
        for op in ops:
            draw, off, matrix = draws[op]
            value = draw()
            value = torch.where(self._fires(op, n, device=dev), value, torch.full_like(value, off))
            mat = _mm(matrix(value), mat)
        return apply_color(x, mat.to(x.dtype))

    def _corrupt(self, x: Tensor) -> Tensor:
        n, dev = x.shape[0], x.device
        if self.multipliers["noise"] > 0:
            sigma = torch.randn(n, device=dev).abs() * NOISE_STD
            x = add_noise(x, torch.where(self._fires("noise", n, device=dev), sigma, torch.zeros_like(sigma)))
        if self.multipliers["cutout"] > 0:
            size = torch.where(self._fires("cutout", n, device=dev), CUTOUT_SIZE, 0.0)
            x = cutout(x, torch.rand(n, 2, device=dev), size)
        return x

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ConfigError(f"augment=ada needs images (N, C, H, W); got shape {tuple(x.shape)} "
                              "(use augment=none for toy data)")
        x = self._corrupt(self._color(self._geometric(*self._blit(x))))
        return self.diffaug(x) if self.diffaug is not None else x
