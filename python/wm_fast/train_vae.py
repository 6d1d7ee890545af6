"""Training of V (the ConvVAE) on episode shards; resumable after a kill at any moment.

`out_dir/vae.pt` is rewritten atomically at the end of every epoch with the model, the Adam
state, the epoch count, the config, the per-epoch history and the torch RNG state, so a
restarted `train_vae` continues at the next epoch and (on CPU) ends with the same weights
as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import io
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import VAEConfig
from .data import FrameStream, count_frames
from .shards import load_episode
from .records import refuse_changed
from .scalars import Scalars
from .storage import CheckpointError, WmFastError, atomic_write_bytes, load_checkpoint, save_checkpoint
from .vae import ConvVAE, frames_to_tensor, vae_loss

CHECKPOINT_NAME = "vae.pt"
RECONSTRUCTION_NAME = "reconstruction.png"
RECONSTRUCTION_FRAMES = 8


def load_vae(path: Path | str, device: torch.device | str = "cpu") -> ConvVAE:
    """A trained ConvVAE from `vae.pt`, in eval mode.

    Raises:
        CheckpointError: the file is missing, truncated or corrupt, holds NaN/inf, or its
            weights do not fit a ConvVAE (the message names the file).
    """
    path = Path(path)
    state = load_checkpoint(path, required=("model", "z_dim"))
    return _model_from_state(path, state).to(device).eval()


def _model_from_state(path: Path, state: dict[str, Any]) -> ConvVAE:
    weights = state["model"]
    if not isinstance(weights, dict):
        raise CheckpointError(f"checkpoint {path}: 'model' is not a state dict")
    try:
        z_dim = int(state["z_dim"])
        model = ConvVAE(z_dim)
        model.load_state_dict(weights)
    except (RuntimeError, ValueError, TypeError) as e:
        raise CheckpointError(f"checkpoint {path} does not hold ConvVAE weights: {e}") from e
    return model


def _pick_device(device: torch.device | str | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _summary(history: list[dict[str, float]], resumed_from: int) -> dict[str, Any]:
    last = history[-1] if history else {}
    seconds = sum(h["seconds"] for h in history)
    frames = sum(h["frames"] for h in history)
    return {
        "loss": last.get("loss", math.nan),
        "recon": last.get("recon", math.nan),
        "kl": last.get("kl", math.nan),
        "epochs": len(history),
        "frames_per_s": frames / seconds if seconds > 0 else 0.0,
        "seconds": seconds,
        "resumed_from_epoch": resumed_from,
        "history": [dict(h) for h in history],
    }


def _check_same_config(path: Path, stored: dict[str, Any], cfg: VAEConfig) -> None:
    """A checkpoint may be continued with more epochs, but not with other settings."""
    now = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "epochs"}
    refuse_changed({k: stored.get(k) for k in now}, now, f"checkpoint {path}",
                   "use the same settings, another output folder, or delete the checkpoint", error=CheckpointError)


def train_vae(
    episode_files: Sequence[Path | str],
    out_dir: Path | str,
    cfg: VAEConfig,
    progress: bool = True,
    device: torch.device | str | None = None,
) -> dict[str, Any]:
    """Train V on the frames of `episode_files`; resume from `out_dir/vae.pt` if it exists.

    Adam, batches from a bounded-memory `FrameStream`, the loss of `vae.vae_loss`. The
    checkpoint is saved atomically after every epoch; `out_dir/reconstruction.png` (originals
    above reconstructions) is written at the end.

    Args:
        episode_files: episode shards (`shards.save_episode` format), frames 64x64.
        out_dir: where `vae.pt` and `reconstruction.png` go.
        cfg: sizes, epochs and seed.
        progress: show a tqdm bar over batches.
        device: default CUDA when available, else CPU. Same seed and data give the same
            weights on CPU (CUDA convolutions may be nondeterministic).
    Returns:
        Metrics of the last epoch: `loss`, `recon`, `kl` (per-frame means over the epoch),
        `epochs` done, `frames_per_s` and `seconds` over all epochs trained,
        `resumed_from_epoch` (epochs already done when this call started) and `history`.
    Raises:
        CheckpointError: an existing `vae.pt` is corrupt or from other settings.
        CorruptShardError: an episode shard is unreadable.
        WmFastError: no episodes, or the loss became non-finite.
    """
    files = [Path(p) for p in episode_files]
    if not files:
        raise WmFastError("train_vae: no episode files given")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / CHECKPOINT_NAME
    dev = _pick_device(device)

    torch.manual_seed(cfg.seed)
    model = ConvVAE(cfg.z_dim)
    history: list[dict[str, float]] = []
    start_epoch = 0
    opt_state = None
    if ckpt_path.exists():
        state = load_checkpoint(
            ckpt_path, required=("model", "optimizer", "epoch", "config", "z_dim", "history", "torch_rng")
        )
        _check_same_config(ckpt_path, state["config"], cfg)
        model = _model_from_state(ckpt_path, state)
        start_epoch = int(state["epoch"])
        history = [dict(h) for h in state["history"]]
        opt_state = state["optimizer"]
        torch.set_rng_state(state["torch_rng"])
    model.to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    if opt_state is not None:
        try:
            optimizer.load_state_dict(opt_state)
        except (ValueError, KeyError, RuntimeError) as e:
            raise CheckpointError(f"checkpoint {ckpt_path}: optimizer state does not fit ({e})") from e

    if start_epoch >= cfg.epochs:
        if not (out_dir / RECONSTRUCTION_NAME).exists():
            save_reconstruction(model, files, out_dir / RECONSTRUCTION_NAME)
        return _summary(history, start_epoch)

    stream = FrameStream(
        files, cfg.batch_size, shuffle_shards=cfg.shuffle_shards, frame_stride=cfg.frame_stride,
        seed=cfg.seed,
    )
    total_frames = count_frames(files, cfg.frame_stride)
    n_batches = stream.num_batches(total_frames)

    scalars = Scalars(out_dir / "tensorboard")
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        sums = {"loss": 0.0, "recon": 0.0, "kl": 0.0}
        seen = 0
        t0 = time.perf_counter()
        bar = tqdm(
            stream.iter_epoch(epoch), total=n_batches, disable=not progress, leave=False,
            desc=f"V epoch {epoch + 1}/{cfg.epochs}", unit="batch",
        )
        for b, frames in enumerate(bar):
            x = frames_to_tensor(frames, dev)
            recon, mu, logvar = model(x)
            loss, r_loss, kl = vae_loss(recon, x, mu, logvar, cfg.kl_tolerance, cfg.z_dim)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            lv = loss.item()
            if not math.isfinite(lv):
                raise WmFastError(
                    f"VAE loss became {lv} at epoch {epoch + 1}, batch {b + 1}; "
                    f"the last good checkpoint {ckpt_path} is kept (try a smaller lr)"
                )
            n = x.shape[0]
            seen += n
            sums["loss"] += lv * n
            sums["recon"] += r_loss.item() * n
            sums["kl"] += kl.item() * n
            if progress:
                bar.set_postfix(loss=f"{lv:.1f}", fps=f"{seen / (time.perf_counter() - t0):.0f}")
        bar.close()
        seconds = time.perf_counter() - t0
        history.append({
            "epoch": float(epoch + 1),
            "loss": sums["loss"] / max(seen, 1),
            "recon": sums["recon"] / max(seen, 1),
            "kl": sums["kl"] / max(seen, 1),
            "frames": float(seen),
            "seconds": seconds,
            "frames_per_s": seen / seconds if seconds > 0 else 0.0,
        })
        scalars.add(history[-1], epoch + 1, "V/")
        save_checkpoint(ckpt_path, {
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "epoch": epoch + 1,
            "config": dataclasses.asdict(cfg),
            "z_dim": cfg.z_dim,
            "history": history,
            "torch_rng": torch.get_rng_state(),
        })
        if progress:
            h = history[-1]
            tqdm.write(
                f"V epoch {epoch + 1}/{cfg.epochs}: loss {h['loss']:.2f} (recon {h['recon']:.2f}, "
                f"kl {h['kl']:.2f}), {h['frames_per_s']:.0f} frames/s"
            )

    scalars.close()
    save_reconstruction(model, files, out_dir / RECONSTRUCTION_NAME)
    return _summary(history, start_epoch)


def reconstruction_frames(files: Sequence[Path | str], n: int = RECONSTRUCTION_FRAMES) -> np.ndarray:
    """A fixed choice of `n` frames: evenly spaced over the first `n` episodes of `files`.

    Returns:
        uint8 (n', 64, 64, 3), n' = min(n, frames available).
    """
    files = [Path(p) for p in files][:n]
    if not files:
        raise WmFastError("no episode files to take reconstruction frames from")
    per_episode = math.ceil(n / len(files))
    picked = []
    for p in files:
        frames = load_episode(p)["frames"]
        idx = np.unique(np.linspace(0, len(frames) - 1, per_episode + 2).round().astype(int)[1:-1])
        picked.append(frames[idx])
    return np.concatenate(picked)[:n]


@torch.no_grad()
def save_reconstruction(model: ConvVAE, files: Sequence[Path | str], path: Path | str) -> None:
    """PNG of original frames (top row) above V's reconstructions from mu (bottom row)."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    frames = reconstruction_frames(files)
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    mu, _ = model.encode(frames_to_tensor(frames, dev))
    recon = (model.decode(mu).clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    model.train(was_training)

    n = len(frames)
    fig = Figure(figsize=(1.3 * n, 2.9))
    axes = fig.subplots(2, n, squeeze=False)
    for i in range(n):
        for row, img in ((0, frames[i]), (1, recon[i])):
            ax = axes[row][i]
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        if i == 0:
            axes[0][0].set_ylabel("original")
            axes[1][0].set_ylabel("V(x)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    atomic_write_bytes(path, buf.getvalue())
