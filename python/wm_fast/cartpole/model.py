"""M on CartPole's state: the MDN-RNN or a deterministic LSTM, its skip path, losses and training."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..envs.cartpole import ACTION_DIM, STATE_DIM
from ..mdnrnn import MDNRNN
from ..sequences import episode_windows
from ..storage import WmFastError, save_checkpoint
from .config import CartPoleConfig



def make_model(cfg: CartPoleConfig) -> MDNRNN:
    k = cfg.n_gaussians if cfg.model == "mdn" else 1
    model = MDNRNN(STATE_DIM, ACTION_DIM, cfg.hidden, k, cfg.layout)
    if cfg.skip > 0:
        skip_init(model, cfg.skip)
    return model


def skip_init(model: MDNRNN, w: float = 0.1, gate: float = 12.0) -> None:
    """Set M's skip path: "next state = this state + what the other units add" (a residual M).

    LSTM units 0..Z-1 copy z: unit d reads only z_d (g-gate weight w), with its input and
    output gates open and its forget gate shut (biases +gate, +gate, -gate), so
    h_d = tanh(tanh(w z_d)) = w z_d (1 - O(w^2 z^2)); the head's mean rows of dim d (every
    component) read unit d with weight 1/w. `skip_masks` keeps these entries fixed during
    training, so M learns only the change z_{t+1} - z_t. The result is an ordinary MDNRNN:
    the dream engine runs it unchanged.
    """
    z, h, k = model.z_dim, model.hidden, model.n_gaussians
    if h < z:
        raise ValueError(f"skip_init needs hidden >= z_dim, got {h} < {z}")
    lstm, head = model.lstm, model.head
    with torch.no_grad():
        for d in range(z):
            for gate_rows in range(4):  # i, f, g, o rows of unit d
                row = gate_rows * h + d
                lstm.weight_ih_l0[row].zero_()
                lstm.weight_hh_l0[row].zero_()
                lstm.bias_hh_l0[row] = 0.0
            lstm.bias_ih_l0[0 * h + d] = gate
            lstm.bias_ih_l0[1 * h + d] = -gate
            lstm.bias_ih_l0[2 * h + d] = 0.0
            lstm.bias_ih_l0[3 * h + d] = gate
            lstm.weight_ih_l0[2 * h + d, d] = w
        off = k if model.layout == "shared" else k * z  # first mean row
        head.weight[:, :z].zero_()
        for kk in range(k):
            for d in range(z):
                head.weight[off + kk * z + d, d] = 1.0 / w


def freeze_sigma(model: MDNRNN, sigma: float) -> None:
    """Deterministic LSTM: log-sigma head rows := log(sigma) (weights 0), so samples are the mean."""
    k, z = model.n_gaussians, model.z_dim
    off = (k if model.layout == "shared" else k * z) + k * z
    with torch.no_grad():
        model.head.weight[off:off + k * z].zero_()
        model.head.bias[off:off + k * z].fill_(math.log(sigma))


def skip_masks(model: MDNRNN) -> dict[str, torch.Tensor]:
    """Per parameter, 1.0 where training may change it and 0.0 on the skip path of `skip_init`."""
    z, h, k = model.z_dim, model.hidden, model.n_gaussians
    masks = {name: torch.ones_like(p) for name, p in model.named_parameters()}
    for d in range(z):
        for g in range(4):
            for name in ("lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.bias_ih_l0", "lstm.bias_hh_l0"):
                masks[name][g * h + d] = 0.0
    off = k if model.layout == "shared" else k * z
    masks["head.weight"][off:off + k * z, :z] = 0.0  # every mean row's weights on the skip units
    return masks


def model_losses(model: MDNRNN, batch, cfg: CartPoleConfig, pos_weight: float) -> dict[str, torch.Tensor]:
    """Loss of one batch: MDN NLL (or MSE of the mean) of z_{t+1} + class-weighted done BCE."""
    from ..sequences import sample_z
    from ..train_rnn import rnn_losses

    z = sample_z(batch.mu, batch.logvar)
    out, _ = model(z[:-1], batch.actions)
    n = batch.mask.sum().clamp_min(1.0)
    if cfg.model == "mdn":
        terms = rnn_losses(out, z[1:], batch.rewards, batch.dones, batch.mask, model.layout,
                           reward_weight=0.0, done_weight=cfg.done_weight, done_pos_weight=pos_weight)
        if cfg.mean_mse_weight > 0:
            mse = (((mixture_mean(model, out) - z[1:]) ** 2).mean(-1) * batch.mask).sum() / n
            terms["loss"] = terms["loss"] + cfg.mean_mse_weight * mse
            terms["mse"] = mse
        return terms
    mse = (((out.mu[..., 0, :] - z[1:]) ** 2).mean(-1) * batch.mask).sum() / n
    pos = torch.as_tensor(pos_weight)
    bce = (F.binary_cross_entropy_with_logits(out.done_logit, batch.dones, pos_weight=pos, reduction="none")
           * batch.mask).sum() / n
    return {"loss": cfg.mse_weight * mse + cfg.done_weight * bce, "mse": mse, "done_bce": bce}


def mixture_mean(model: MDNRNN, out) -> torch.Tensor:
    """The mean of M's predicted mixture, (..., Z)."""
    if model.layout == "shared":
        pi = torch.softmax(out.logit_pi, dim=-1)
        return (pi.unsqueeze(-1) * out.mu).sum(-2)
    return (torch.softmax(out.logit_pi, dim=-2) * out.mu).sum(-2)


@torch.no_grad()
def model_diagnostics(model: MDNRNN, episodes, cfg: CartPoleConfig) -> dict[str, float]:
    """Teacher-forced one-step error of M on `episodes` (whole episodes from zero state).

    rmse: RMSE of the predicted mean next state (normalized units; the mixture mean for the
    MDN); step_rms: RMS of the true change z_{t+1} - z_t (what a good model must resolve);
    done precision / recall at the dream's threshold.
    """
    n_ep = len(episodes)
    w = np.stack([np.arange(n_ep), np.zeros(n_ep, dtype=np.int64), episodes.lengths], 1)
    sq = dz = cnt = tp = fp = fn = 0.0
    for i in range(0, n_ep, 256):
        b = episodes.gather(w[i:i + 256])
        out, _ = model(b.mu[:-1], b.actions)
        mean = mixture_mean(model, out)
        m = b.mask
        sq += float((((mean - b.mu[1:]) ** 2).mean(-1) * m).sum())
        dz += float((((b.mu[1:] - b.mu[:-1]) ** 2).mean(-1) * m).sum())
        cnt += float(m.sum())
        pred = (torch.sigmoid(out.done_logit) > cfg.done_threshold).float() * m
        tp += float((pred * b.dones).sum())
        fp += float((pred * (1 - b.dones)).sum())
        fn += float(((1 - pred) * b.dones * m).sum())
    return {"rmse": math.sqrt(sq / cnt), "step_rms": math.sqrt(dz / cnt),
            "done_precision": tp / max(tp + fp, 1.0), "done_recall": tp / max(tp + fn, 1.0)}


def add_mirrored(episodes) -> None:
    """Append to LatentEpisodes `episodes` the mirror image of each episode (z -> -z, actions swapped)."""
    n = len(episodes.lengths)
    episodes.mu = np.concatenate([episodes.mu, -episodes.mu])
    episodes.logvar = np.concatenate([episodes.logvar, episodes.logvar])
    episodes.actions = np.concatenate([episodes.actions, episodes.actions[:, ::-1]])
    episodes.rewards = np.concatenate([episodes.rewards, episodes.rewards])
    episodes.dones = np.concatenate([episodes.dones, episodes.dones])
    episodes.lengths = np.concatenate([episodes.lengths, episodes.lengths])
    episodes.step_offset = np.concatenate([[0], np.cumsum(episodes.lengths)[:-1]])
    episodes.frame_offset = episodes.step_offset + np.arange(2 * n)
    episodes.files = list(episodes.files) * 2


def train_model(files: list[Path], out_path: Path, cfg: CartPoleConfig, steps: int,
                init: Path | None = None, seed: int = 0) -> dict[str, Any]:
    """Train M for `steps` batches on the episodes in `files` (from `init`'s weights when given)."""
    from ..sequences import LatentEpisodes

    t0 = time.perf_counter()
    episodes = LatentEpisodes(files)
    if cfg.mirror:
        add_mirrored(episodes)
    n_pos = float(episodes.dones.sum())
    n_neg = float(len(episodes.dones)) - n_pos
    pos_weight = cfg.done_pos_weight or (n_neg / max(n_pos, 1.0))
    torch.manual_seed(seed)
    model = make_model(cfg)
    if init is not None:
        from ..train_rnn import load_mdnrnn

        model.load_state_dict(load_mdnrnn(init).state_dict())
    if cfg.skip > 0:  # the skip path stays exactly as set: its gradients are zeroed
        masks = skip_masks(model)
        for name, p in model.named_parameters():
            p.register_hook(lambda g, m=masks[name]: g * m)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    model.train()
    done, epoch, recent = 0, 0, []
    while done < steps:
        w = episode_windows(episodes.lengths, cfg.seq_len, np.random.default_rng([seed, epoch]), cfg.end_windows)
        for i in range(0, len(w), cfg.batch_size):
            batch = episodes.gather(w[i:i + cfg.batch_size])
            batch.mask[:cfg.burn_in, torch.as_tensor(w[i:i + cfg.batch_size, 1] > 0)] = 0.0
            # cosine decay of the learning rate from lr to lr / 20 over this call's steps
            for g in opt.param_groups:
                g["lr"] = cfg.lr * (0.525 + 0.475 * math.cos(math.pi * done / steps))
            terms = model_losses(model, batch, cfg, pos_weight)
            if not torch.isfinite(terms["loss"]):
                raise WmFastError(f"M's loss became {terms['loss'].item()}; lower lr")
            opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            recent = (recent + [{k: float(v.detach()) for k, v in terms.items()}])[-50:]
            done += 1
            if done >= steps:
                break
        epoch += 1
    model.eval()
    if cfg.model == "lstm":
        freeze_sigma(model, cfg.det_sigma)
    metrics = {k: float(np.mean([r[k] for r in recent])) for k in recent[0]}
    metrics.update(model_diagnostics(model, episodes, cfg))
    metrics.update(steps=steps, episodes=len(episodes), data_steps=episodes.total_steps,
                   done_pos_weight=pos_weight, seconds=time.perf_counter() - t0)
    save_checkpoint(out_path, {"model": {k: v.detach().clone() for k, v in model.state_dict().items()},
                               **model.arch(), "metrics": metrics, "config": dataclasses.asdict(cfg)})
    return metrics
