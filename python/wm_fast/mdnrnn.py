"""M: the MDN-RNN, its losses and its sampling (no training loop; see train_rnn.py).

An LSTM reads x_t = [z_t, a_t] and a linear head maps h_t to a mixture of Gaussians over
z_{t+1}, a reward and a done logit. Step t consumes (z_t, a_t) and predicts z_{t+1},
rewards[t] and dones[t] (the convention of `shards.py`).

Weight layout (a contract: the compiled dream engine reads these tensors directly)
-----------------------------------------------------------------------------------
    lstm.weight_ih_l0 (4H, Z+A)  lstm.weight_hh_l0 (4H, H)  lstm.bias_ih_l0 (4H,)  lstm.bias_hh_l0 (4H,)
        gate rows in PyTorch order i, f, g, o; input columns: z first, then a.
    head.weight (D, H)  head.bias (D,)
        D output rows, in this order (K components, Z latent dims):
          logit_pi   K rows ("shared") or K*Z rows ("per_dim")
          mu         K*Z rows
          logsigma   K*Z rows
          reward     1 row
          done_logit 1 row
        so D = K + 2KZ + 2 (shared) or 3KZ + 2 (per_dim). Inside a K*Z block the row of
        component k, latent dim d is k*Z + d (a row-major (K, Z) block).

Layouts: "shared" has one set of K mixture weights for all z dims (ctallec/world-models),
"per_dim" one set of K weights per z dim (the original). sigma = exp(logsigma), unclamped.

Dropout (variational, Gal & Ghahramani; Dropout's Dream Land): `forward` and `step` take optional
masks mask_z (B, Z) and mask_h (B, H) of multipliers (0 or 1/(1-p), see `dropout_masks`): the gates
read [z * mask_z, a] and h_{t-1} * mask_h, with the same masks at every step of a sequence and one
mask shared by the four gates. Actions, c, and the h_t that goes to the head and to the next step
are never masked. The weights are the same tensors either way.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

Layout = Literal["shared", "per_dim"]
LAYOUTS: tuple[str, ...] = ("shared", "per_dim")

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


class MDNOutput(NamedTuple):
    """M's prediction; `...` is (T, B) from `forward` and (B,) from `step`.

    logit_pi:   (..., K) for "shared", (..., K, Z) for "per_dim"; unnormalised mixture logits
    mu:         (..., K, Z)
    logsigma:   (..., K, Z)   log standard deviation
    reward:     (...)
    done_logit: (...)
    """

    logit_pi: torch.Tensor
    mu: torch.Tensor
    logsigma: torch.Tensor
    reward: torch.Tensor
    done_logit: torch.Tensor


def head_size(z_dim: int, n_gaussians: int, layout: Layout) -> int:
    """Rows D of the head: K + 2KZ + 2 (shared) or 3KZ + 2 (per_dim)."""
    _check_layout(layout)
    kz = n_gaussians * z_dim
    return (n_gaussians if layout == "shared" else kz) + 2 * kz + 2


def _check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")


def dropout_masks(batch: int, z_dim: int, hidden: int, p: float, generator: torch.Generator | None = None,
                  device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverted-dropout masks of rate p: mask_z (B, Z) and mask_h (B, H), each value 0 or 1/(1-p).

    A unit is kept when its uniform (torch.rand, z's drawn before h's) is >= p.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {p}")
    scale = 1.0 / (1.0 - p)
    mask_z = (torch.rand((batch, z_dim), generator=generator) >= p).to(torch.float32) * scale
    mask_h = (torch.rand((batch, hidden), generator=generator) >= p).to(torch.float32) * scale
    return mask_z.to(device), mask_h.to(device)


def _lstm_cell(gates: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """gates (B, 4H) in chunks i, f, g, o; c (B, H) -> (h', c')."""
    i, f, g, o = gates.chunk(4, dim=-1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_new), c_new


def masked_lstm(lstm: nn.LSTM, z: torch.Tensor, a: torch.Tensor, h: torch.Tensor, c: torch.Tensor,
                mask_z: torch.Tensor | None, mask_h: torch.Tensor | None,
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """The one layer of `lstm` run step by step from its weights, with variational dropout masks.

    Args:
        z: (T, B, Z);  a: (T, B, A);  h, c: (B, H) initial state.
        mask_z: (B, Z) or None, on z at every step;  mask_h: (B, H) or None, on h_{t-1} at every step.
    Returns:
        hs (T, B, H) unmasked hidden states, and the final (h, c).
    """
    zin = z if mask_z is None else z * mask_z
    # The input part of the gates of all steps in one matmul; unbind (not x[t]) keeps backward O(T).
    x_proj = (torch.cat([zin, a], dim=-1) @ lstm.weight_ih_l0.T + lstm.bias_ih_l0).unbind(0)  # T x (B, 4H)
    hs = []
    for x_t in x_proj:
        hin = h if mask_h is None else h * mask_h
        h, c = _lstm_cell(x_t + hin @ lstm.weight_hh_l0.T + lstm.bias_hh_l0, c)
        hs.append(h)
    return torch.stack(hs), (h, c)


class MDNRNN(nn.Module):
    """One-layer LSTM + linear mixture-density head.

    Submodules (exactly): `lstm = nn.LSTM(z_dim + action_dim, hidden)` (sequence first) and
    `head = nn.Linear(hidden, head_size(z_dim, n_gaussians, layout))`.
    """

    def __init__(
        self,
        z_dim: int,
        action_dim: int,
        hidden: int = 256,
        n_gaussians: int = 5,
        layout: Layout = "per_dim",
    ) -> None:
        super().__init__()
        _check_layout(layout)
        for name, v in (("z_dim", z_dim), ("action_dim", action_dim), ("hidden", hidden),
                        ("n_gaussians", n_gaussians)):
            if int(v) <= 0:
                raise ValueError(f"{name} must be positive, got {v}")
        self.z_dim = int(z_dim)
        self.action_dim = int(action_dim)
        self.hidden = int(hidden)
        self.n_gaussians = int(n_gaussians)
        self.layout: Layout = layout
        self.lstm = nn.LSTM(self.z_dim + self.action_dim, self.hidden)
        self.head = nn.Linear(self.hidden, head_size(self.z_dim, self.n_gaussians, layout))

    @property
    def out_dim(self) -> int:
        """Rows D of the head."""
        return self.head.out_features

    def arch(self) -> dict[str, object]:
        """The constructor arguments, as stored in checkpoints."""
        return {"z_dim": self.z_dim, "action_dim": self.action_dim, "hidden": self.hidden,
                "n_gaussians": self.n_gaussians, "layout": self.layout}

    def initial_state(self, batch: int, device: torch.device | str | None = None,
                      dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero state (h, c), each (B, H), on the model's device and dtype by default."""
        w = self.lstm.weight_hh_l0
        shape = (batch, self.hidden)
        kw = {"device": device if device is not None else w.device,
              "dtype": dtype if dtype is not None else w.dtype}
        return torch.zeros(shape, **kw), torch.zeros(shape, **kw)

    def unpack(self, out: torch.Tensor) -> MDNOutput:
        """Split raw head output (..., D) into an MDNOutput (see the module docstring)."""
        k, z = self.n_gaussians, self.z_dim
        kz = k * z
        lead = out.shape[:-1]
        if self.layout == "shared":
            logit_pi, off = out[..., :k], k
        else:
            logit_pi, off = out[..., :kz].reshape(*lead, k, z), kz
        mu = out[..., off:off + kz].reshape(*lead, k, z)
        logsigma = out[..., off + kz:off + 2 * kz].reshape(*lead, k, z)
        return MDNOutput(logit_pi, mu, logsigma, out[..., -2], out[..., -1])

    def _check_inputs(self, z: torch.Tensor, a: torch.Tensor, ndim: int) -> None:
        if z.dim() != ndim or z.shape[-1] != self.z_dim:
            raise ValueError(f"z must have {ndim} dims with last dim {self.z_dim}, got {tuple(z.shape)}")
        if a.dim() != ndim or a.shape[-1] != self.action_dim or a.shape[:-1] != z.shape[:-1]:
            raise ValueError(f"a must be {tuple(z.shape[:-1]) + (self.action_dim,)}, got {tuple(a.shape)}")

    def _check_masks(self, batch: int, mask_z: torch.Tensor | None, mask_h: torch.Tensor | None) -> None:
        for name, m, size in (("mask_z", mask_z, self.z_dim), ("mask_h", mask_h, self.hidden)):
            if m is not None and m.shape != (batch, size):
                raise ValueError(f"{name} must be ({batch}, {size}), got {tuple(m.shape)}")

    def forward(
        self,
        z: torch.Tensor,
        a: torch.Tensor,
        state: tuple[torch.Tensor, torch.Tensor] | None = None,
        mask_z: torch.Tensor | None = None,
        mask_h: torch.Tensor | None = None,
    ) -> tuple[MDNOutput, tuple[torch.Tensor, torch.Tensor]]:
        """Teacher-forced pass over a sequence.

        Args:
            z: (T, B, Z) latents z_0..z_{T-1}.
            a: (T, B, A) actions a_0..a_{T-1}.
            state: (h, c), each (B, H), or None for zeros.
            mask_z, mask_h: (B, Z) and (B, H) dropout masks, one per sequence (module docstring);
                with either, the LSTM runs step by step (`masked_lstm`), else as the fused nn.LSTM.
        Returns:
            MDNOutput with leading (T, B) (step t predicts z_{t+1}, rewards[t], dones[t]),
            and the final state (h, c), each (B, H).
        """
        self._check_inputs(z, a, 3)
        if mask_z is not None or mask_h is not None:
            self._check_masks(z.shape[1], mask_z, mask_h)
            h0, c0 = state if state is not None else self.initial_state(z.shape[1], z.device, z.dtype)
            hs, (h, c) = masked_lstm(self.lstm, z, a, h0, c0, mask_z, mask_h)
            return self.unpack(self.head(hs)), (h, c)
        x = torch.cat([z, a], dim=-1)
        lstm_state = None if state is None else (state[0].unsqueeze(0), state[1].unsqueeze(0))
        hs, (h, c) = self.lstm(x, lstm_state)
        return self.unpack(self.head(hs)), (h.squeeze(0), c.squeeze(0))

    def step(
        self,
        z: torch.Tensor,
        a: torch.Tensor,
        state: tuple[torch.Tensor, torch.Tensor] | None = None,
        mask_z: torch.Tensor | None = None,
        mask_h: torch.Tensor | None = None,
    ) -> tuple[MDNOutput, tuple[torch.Tensor, torch.Tensor]]:
        """One step with the same weights, written out (what the dream engine computes).

        gates = [z * mask_z, a] W_ih^T + b_ih + (h * mask_h) W_hh^T + b_hh, split in chunks i, f, g, o;
        c' = sigmoid(f) c + sigmoid(i) tanh(g);  h' = sigmoid(o) tanh(c')   (no mask: no product).

        Args:
            z: (B, Z);  a: (B, A);  state: (h, c), each (B, H), or None for zeros.
            mask_z: (B, Z) or None;  mask_h: (B, H) or None: dropout multipliers (module docstring).
        Returns:
            MDNOutput with leading (B,) computed from h' (unmasked), and the new state (h', c').
        """
        self._check_inputs(z, a, 2)
        self._check_masks(z.shape[0], mask_z, mask_h)
        if state is None:
            state = self.initial_state(z.shape[0], z.device, z.dtype)
        h, c = state
        x = torch.cat([z if mask_z is None else z * mask_z, a], dim=-1)
        hin = h if mask_h is None else h * mask_h
        lstm = self.lstm
        gates = x @ lstm.weight_ih_l0.T + lstm.bias_ih_l0 + hin @ lstm.weight_hh_l0.T + lstm.bias_hh_l0
        h_new, c_new = _lstm_cell(gates, c)
        return self.unpack(self.head(h_new)), (h_new, c_new)


def _k_axis(logit_pi: torch.Tensor, logsigma: torch.Tensor, layout: str | None) -> int:
    """Axis of the K components in logit_pi: -1 (shared) or -2 (per_dim)."""
    if layout is None:
        layout = "per_dim" if logit_pi.dim() == logsigma.dim() else "shared"
    _check_layout(layout)
    if layout == "shared":
        if logit_pi.dim() != logsigma.dim() - 1 or logit_pi.shape[-1] != logsigma.shape[-2]:
            raise ValueError(f"shared layout: logit_pi must be (..., K) for logsigma (..., K, Z), "
                             f"got {tuple(logit_pi.shape)} and {tuple(logsigma.shape)}")
        return -1
    if logit_pi.shape != logsigma.shape:
        raise ValueError(f"per_dim layout: logit_pi must be (..., K, Z) like logsigma, "
                         f"got {tuple(logit_pi.shape)} and {tuple(logsigma.shape)}")
    return -2


def mdn_nll(
    logit_pi: torch.Tensor,
    mu: torch.Tensor,
    logsigma: torch.Tensor,
    target: torch.Tensor,
    layout: Layout,
) -> torch.Tensor:
    """Negative log-likelihood of `target` under the mixture, per step, in nats summed over Z.

    shared:  -log sum_k pi_k prod_d N(z_d | mu_kd, sigma_kd)
    per_dim: -sum_d log sum_k pi_kd N(z_d | mu_kd, sigma_kd)
    Computed with log_softmax + logsumexp. It is a density: negative values are normal.

    Args:
        logit_pi: (..., K) shared or (..., K, Z) per_dim.
        mu, logsigma: (..., K, Z).
        target: (..., Z).
    Returns:
        (...) NLL.
    """
    axis = _k_axis(logit_pi, logsigma, layout)
    t = target.unsqueeze(-2)  # (..., 1, Z)
    log_n = -0.5 * ((t - mu) * torch.exp(-logsigma)) ** 2 - logsigma - _LOG_SQRT_2PI  # (..., K, Z)
    log_pi = F.log_softmax(logit_pi, dim=axis)
    if axis == -1:  # shared
        return -torch.logsumexp(log_pi + log_n.sum(-1), dim=-1)
    return -torch.logsumexp(log_pi + log_n, dim=-2).sum(-1)


def mixture_params(
    logit_pi: torch.Tensor,
    logsigma: torch.Tensor,
    temperature: float,
    layout: Layout | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Temperature-adjusted mixture: log pi' = log_softmax(logit / tau), sigma' = exp(logsigma) sqrt(tau).

    The softmax runs over K: the last axis for shared logits (..., K), axis -2 for per_dim
    logits (..., K, Z); `layout` is inferred from the shapes when None.

    Returns:
        (log_pi_tau shaped like logit_pi, sigma_tau (..., K, Z)).
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    axis = _k_axis(logit_pi, logsigma, layout)
    log_pi_tau = F.log_softmax(logit_pi / temperature, dim=axis)
    sigma_tau = torch.exp(logsigma) * math.sqrt(temperature)
    return log_pi_tau, sigma_tau


def sample_mdn(
    params: MDNOutput | Sequence[torch.Tensor],
    temperature: float,
    layout: Layout,
    u: torch.Tensor | None = None,
    eps: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw z (B, Z) from the mixture at temperature tau (the convention the engine mirrors).

    Args:
        params: an MDNOutput with leading (B,) or a tuple (logit_pi, mu, logsigma) with
            logit_pi (B, K) shared or (B, K, Z) per_dim, mu and logsigma (B, K, Z).
        temperature: tau > 0.
        layout: "shared" or "per_dim".
        u: (B, Z) uniforms in [0, 1); drawn as torch.rand((B, Z), generator=generator) if None.
        eps: (B, Z) standard normals; drawn as torch.randn((B, Z), generator=generator) if None
            (after u, when both are drawn).
        generator: torch.Generator for the draws (the default generator when None).

    Convention:
        pi' = softmax(logit_pi / tau) over K, sigma' = exp(logsigma) * sqrt(tau).
        cdf_k = pi'_0 + ... + pi'_k (cumulative sum in component order).
        Component k* = number of k with cdf_k <= u, clamped to K-1, i.e. the smallest k with
        u < cdf_k (K-1 if rounding leaves cdf_{K-1} <= u).
        per_dim: each dim d picks its own k*_d from its own pi'_{:,d} with u[:, d].
        shared: one k* per row from pi' with u[:, 0], used for every dim (u[:, 1:] unused).
        z_d = mu_{k*,d} + sigma'_{k*,d} * eps_d.
    Returns:
        z: (B, Z).
    """
    if isinstance(params, MDNOutput):
        logit_pi, mu, logsigma = params.logit_pi, params.mu, params.logsigma
    else:
        logit_pi, mu, logsigma = params
    if mu.dim() != 3 or logsigma.shape != mu.shape:
        raise ValueError(f"mu and logsigma must be (B, K, Z), got {tuple(mu.shape)} and {tuple(logsigma.shape)}")
    axis = _k_axis(logit_pi, logsigma, layout)
    b, k, zd = mu.shape
    if u is None:
        u = torch.rand((b, zd), generator=generator, dtype=mu.dtype, device=mu.device)
    if eps is None:
        eps = torch.randn((b, zd), generator=generator, dtype=mu.dtype, device=mu.device)
    if u.shape != (b, zd) or eps.shape != (b, zd):
        raise ValueError(f"u and eps must be ({b}, {zd}), got {tuple(u.shape)} and {tuple(eps.shape)}")
    log_pi, sigma = mixture_params(logit_pi, logsigma, temperature, layout)
    cdf = torch.cumsum(torch.exp(log_pi), dim=axis)
    if axis == -1:  # shared: (B, K) against u[:, 0]
        idx = (cdf <= u[:, :1]).sum(-1).clamp_(max=k - 1)  # (B,)
        idx = idx.unsqueeze(-1).expand(b, zd)
    else:  # per_dim: (B, K, Z) against u (B, 1, Z)
        idx = (cdf <= u.unsqueeze(1)).sum(1).clamp_(max=k - 1)  # (B, Z)
    idx = idx.unsqueeze(1)  # (B, 1, Z)
    mu_k = mu.gather(1, idx).squeeze(1)
    sigma_k = sigma.gather(1, idx).squeeze(1)
    return mu_k + sigma_k * eps


def mixture_mean(out: MDNOutput, layout: Layout) -> torch.Tensor:
    """The mean of M's predicted mixture: sum_k pi_k mu_k, (..., Z)."""
    _check_layout(layout)
    if layout == "shared":
        return (torch.softmax(out.logit_pi, dim=-1).unsqueeze(-1) * out.mu).sum(-2)
    return (torch.softmax(out.logit_pi, dim=-2) * out.mu).sum(-2)
