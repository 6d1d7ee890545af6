"""Training M on latent sequences, with an atomic checkpoint after every epoch.

Loss per batch (masked means over valid steps):
    nll / Z                                   per-dim nats of z_{t+1} under the mixture
  + reward_weight * MSE(reward_t, rewards[t])
  + done_weight * BCEWithLogits(done_t, dones[t], pos_weight=done_pos_weight)
  + mean_mse_weight * MSE(mixture mean, z_{t+1})   (an anchor for the mixture; 0: off)
with z = mu + exp(logvar / 2) * eps sampled afresh each batch from V's stored posterior.
done_pos_weight <= 0 means balanced: (steps that are not ends) / (ends) in the training data.
With cfg.dropout > 0, M trains with variational dropout: each sequence of a batch draws one mask
on z and one on h_{t-1} (mdnrnn.dropout_masks, torch's global RNG like the latents); M's quality
afterwards is measured without dropout.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .config import RNNConfig
from .m_quality import describe, m_quality, split_holdout
from .mdnrnn import MDNOutput, MDNRNN, dropout_masks, mdn_nll, mixture_mean
from .records import refuse_changed
from .scalars import Scalars
from .sequences import LatentEpisodes, SequenceSampler, sample_z
from .storage import CheckpointError, WmFastError, load_checkpoint, save_checkpoint

CHECKPOINT_NAME = "rnn.pt"
ARCH_KEYS = ("z_dim", "action_dim", "hidden", "n_gaussians", "layout")


def rnn_losses(
    out: MDNOutput,
    z_next: torch.Tensor,
    rewards: torch.Tensor,
    dones: torch.Tensor,
    mask: torch.Tensor,
    layout: str,
    reward_weight: float = 1.0,
    done_weight: float = 1.0,
    done_pos_weight: float = 1.0,
    mean_mse_weight: float = 0.0,
) -> dict[str, torch.Tensor]:
    """M's loss terms for one batch.

    Args:
        out: MDNOutput with leading (L, B).
        z_next: (L, B, Z) targets z_{t+1};  rewards, dones, mask: (L, B).
    Returns:
        dict of scalars: "loss" (weighted sum), "nll" (per-dim nats), "reward_mse", "done_bce",
        "mean_mse" (MSE of the mixture mean, per dim).
    """
    n = mask.sum().clamp_min(1.0)
    z_dim = z_next.shape[-1]
    nll = (mdn_nll(out.logit_pi, out.mu, out.logsigma, z_next, layout) / z_dim * mask).sum() / n
    mse = (((out.reward - rewards) ** 2) * mask).sum() / n
    pos = torch.as_tensor(done_pos_weight, dtype=out.done_logit.dtype, device=out.done_logit.device)
    bce = F.binary_cross_entropy_with_logits(out.done_logit, dones, pos_weight=pos, reduction="none")
    bce = (bce * mask).sum() / n
    mean_mse = (((mixture_mean(out, layout) - z_next) ** 2).mean(-1) * mask).sum() / n
    loss = nll + reward_weight * mse + done_weight * bce + mean_mse_weight * mean_mse
    return {"loss": loss, "nll": nll, "reward_mse": mse, "done_bce": bce, "mean_mse": mean_mse}


def _arch_of(state: dict[str, Any], path: Path) -> dict[str, Any]:
    arch = {k: state[k] for k in ARCH_KEYS}
    for k in ARCH_KEYS[:-1]:
        if not isinstance(arch[k], int) or arch[k] <= 0:
            raise CheckpointError(f"checkpoint {path}: {k} must be a positive int, got {arch[k]!r}")
    if arch["layout"] not in ("shared", "per_dim"):
        raise CheckpointError(f"checkpoint {path}: unknown layout {arch['layout']!r}")
    return arch


def _build(state: dict[str, Any], path: Path) -> MDNRNN:
    model = MDNRNN(**_arch_of(state, path))
    try:
        model.load_state_dict(state["model"], strict=True)
    except (RuntimeError, KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(f"checkpoint {path}: weights do not match the MDNRNN it describes ({e})") from e
    return model


def load_mdnrnn(path: Path | str, device: torch.device | str = "cpu") -> MDNRNN:
    """Load M from an `rnn.pt` written by `train_rnn`, in eval mode.

    Raises:
        CheckpointError: missing, truncated or corrupt file, non-finite values, missing keys,
            or weights that do not match the stored architecture (the message names the file).
    """
    path = Path(path)
    state = load_checkpoint(path, required=("model",) + ARCH_KEYS)
    return _build(state, path).to(device).eval()


def train_rnn(
    latent_files: Sequence[Path | str],
    out_dir: Path | str,
    cfg: RNNConfig,
    action_dim: int,
    progress: bool = True,
    device: torch.device | str | None = None,
) -> dict[str, Any]:
    """Train M on latent files; checkpoint `out_dir/rnn.pt` after every epoch; resume from it.

    When `rnn.pt` exists, training continues from its epoch (model, optimizer, history and
    torch RNG restored; the learning rate is reset to cfg.lr) up to cfg.epochs; nothing is
    trained if it already has cfg.epochs epochs. The architecture in the checkpoint must
    match cfg, the latents' Z and `action_dim`.

    Args:
        latent_files: latent files (`shards.save_latents` format).
        out_dir: folder for rnn.pt.
        cfg: RNNConfig.
        action_dim: A; must match the latent files.
        progress: show a tqdm bar with the loss.
        device: where to train (default: cuda when available, else cpu).
    Returns:
        The last epoch's metrics (epoch, loss, nll, reward_mse, done_bce, grad_norm, seconds:
        means over the epoch), plus "history" (one such dict per epoch), "checkpoint" (path), and M's
        quality (m_quality.py) as "quality_<metric>" on the held-out episodes (cfg.holdout; on the
        training episodes when none are held out, "quality_on" says which).
    Raises:
        CheckpointError: an existing rnn.pt is unreadable or from another architecture.
        CorruptShardError: a latent file is broken.
        WmFastError: the loss became non-finite.
    """
    out_dir = Path(out_dir)
    path = out_dir / CHECKPOINT_NAME
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    train_files, held_out = split_holdout(latent_files, cfg.holdout)
    episodes = LatentEpisodes(train_files, cfg.reward_smoothing)
    if episodes.action_dim != action_dim:
        raise ValueError(f"action_dim={action_dim} but the latent files hold actions of size {episodes.action_dim}")
    arch = {"z_dim": episodes.z_dim, "action_dim": action_dim, "hidden": cfg.hidden,
            "n_gaussians": cfg.n_gaussians, "layout": cfg.layout}

    torch.manual_seed(cfg.seed)
    model = MDNRNN(**arch).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    start, history = 0, []
    if path.exists():
        state = load_checkpoint(path, required=("model", "optimizer", "epoch", "history", "torch_rng") + ARCH_KEYS)
        old = _arch_of(state, path)
        refuse_changed(old, arch, f"checkpoint {path} (an MDNRNN)", "use another output folder or the same settings",
                       error=CheckpointError)
        model = _build(state, path).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        try:
            opt.load_state_dict(state["optimizer"])
        except (ValueError, KeyError, RuntimeError) as e:
            raise CheckpointError(f"checkpoint {path}: optimizer state does not match the model ({e})") from e
        for g in opt.param_groups:
            g["lr"] = cfg.lr
        start, history = int(state["epoch"]), list(state["history"])
        torch.set_rng_state(state["torch_rng"])

    sampler = SequenceSampler(episodes, cfg.seq_len, cfg.batch_size, cfg.seed, cfg.length_buckets)
    # With length buckets a batch of short windows holds fewer real steps: its per-step mean loss is scaled by
    # its share of steps, so every real step weighs the same, as when batches mix lengths.
    steps_per_batch = sampler.mean_steps_per_batch() if cfg.length_buckets else None
    scalars = Scalars(out_dir / "tensorboard")
    pos_weight = cfg.done_pos_weight
    if pos_weight <= 0:  # balanced
        ends = float(episodes.dones.sum())
        pos_weight = (len(episodes.dones) - ends) / ends if ends > 0 else 1.0
    bar = tqdm(total=max(cfg.epochs - start, 0) * len(sampler), disable=not progress, desc="M", unit="batch")
    try:
        for epoch in range(start, cfg.epochs):
            model.train()
            t0 = time.perf_counter()
            sums = {"loss": 0.0, "nll": 0.0, "reward_mse": 0.0, "done_bce": 0.0, "mean_mse": 0.0, "grad_norm": 0.0}
            n_batches = 0
            for batch in sampler.epoch(epoch):
                z = sample_z(batch.mu, batch.logvar)  # CPU global RNG: reproducible on resume
                masks: dict[str, torch.Tensor] = {}
                if cfg.dropout > 0:  # one mask pair per sequence, same RNG
                    mask_z, mask_h = dropout_masks(z.shape[1], model.z_dim, model.hidden, cfg.dropout, device=device)
                    masks = {"mask_z": mask_z, "mask_h": mask_h}
                batch = batch.to(device)
                z = z.to(device)
                out, _ = model(z[:-1], batch.actions, **masks)
                terms = rnn_losses(out, z[1:], batch.rewards, batch.dones, batch.mask, cfg.layout,
                                   cfg.reward_weight, cfg.done_weight, pos_weight, cfg.mean_mse_weight)
                loss = terms["loss"]
                if steps_per_batch is not None:
                    loss = loss * (batch.mask.sum() / steps_per_batch)
                if not torch.isfinite(loss):
                    raise WmFastError(f"M's loss became {loss.item()} in epoch {epoch + 1}; "
                                      f"lower rnn.lr or check the latent files")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                gn = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                for k, v in terms.items():
                    sums[k] += float(v.detach())
                sums["grad_norm"] += float(gn)
                n_batches += 1
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{float(terms['loss'].detach()):.4f}")
            row = {"epoch": float(epoch + 1), **{k: v / max(n_batches, 1) for k, v in sums.items()},
                   "seconds": time.perf_counter() - t0}
            history.append(row)
            scalars.add(row, epoch + 1, "M/")
            save_checkpoint(path, {
                "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "optimizer": opt.state_dict(),
                "epoch": epoch + 1,
                "config": asdict(cfg),
                **arch,
                "history": history,
                "torch_rng": torch.get_rng_state(),
            })
    finally:
        bar.close()
    metrics: dict[str, Any] = dict(history[-1]) if history else {}
    metrics["history"] = history
    metrics["checkpoint"] = str(path)
    quality = m_quality(model, held_out or train_files, reward_smoothing=cfg.reward_smoothing)
    metrics.update({f"quality_{k}": v for k, v in quality.items()},
                   quality_on="held-out" if held_out else "training", train_episodes=len(train_files))
    if progress:
        tqdm.write("[wm-fast] " + describe(quality, "held-out" if held_out else "training (none held out)"))
    if start < cfg.epochs:
        scalars.add(quality, cfg.epochs, "M quality/")
    scalars.close()
    return metrics
