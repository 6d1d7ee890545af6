"""How far a dream deserves trust: M's one-step predictions on held-out episodes.

Teacher-forced over whole episodes from a zero state (as a dream starts), with z = V's
posterior mean:
    z_nll            nats per z dimension of z_{t+1} under M's mixture (temperature 1)
    reward_mse_pos   MSE of the reward on steps whose reward is > 0 (CarRacing: a new tile)
    reward_mse_rest  MSE of the reward on the other steps
(the reward M was trained to predict: with reward smoothing its smoothed form, the steps still split by
the env's reward)
    done_precision, done_recall   of sigmoid(done logit) > 0.5 against the episode ends
plus the counts behind them (steps, positive-reward steps, ends). A dream built on an M
whose tile rewards or ends are not predicted is not the environment, whatever C scores in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from .mdnrnn import MDNRNN, mdn_nll
from .sequences import LatentEpisodes


@torch.no_grad()
def m_quality(model: MDNRNN, latent_files: Sequence[Path | str], batch: int = 64,
              reward_smoothing: int = 1) -> dict[str, float]:
    """The metrics of the module docstring for `model` on `latent_files` (floats; NaN where undefined);
    `reward_smoothing` as M was trained (`sequences.smooth_rewards`)."""
    episodes = LatentEpisodes(latent_files, reward_smoothing)
    n = len(episodes)
    windows = np.stack([np.arange(n), np.zeros(n, dtype=np.int64), episodes.lengths], 1)
    was_training = model.training
    model.eval()
    nll = steps = 0.0
    sq_pos = n_pos = sq_rest = n_rest = 0.0
    tp = fp = fn = 0.0
    for i in range(0, n, batch):
        b = episodes.gather(windows[i:i + batch])
        out, _ = model(b.mu[:-1], b.actions)
        m = b.mask
        nll += float((mdn_nll(out.logit_pi, out.mu, out.logsigma, b.mu[1:], model.layout) / model.z_dim * m).sum())
        steps += float(m.sum())
        err = (out.reward - b.rewards) ** 2
        pos = (b.raw_rewards > 0).float() * m
        sq_pos, n_pos = sq_pos + float((err * pos).sum()), n_pos + float(pos.sum())
        sq_rest, n_rest = sq_rest + float((err * (m - pos)).sum()), n_rest + float((m - pos).sum())
        said = (torch.sigmoid(out.done_logit) > 0.5).float() * m
        tp, fp, fn = tp + float((said * b.dones).sum()), fp + float((said * (1 - b.dones)).sum()), \
            fn + float(((1 - said) * b.dones * m).sum())
    model.train(was_training)

    def ratio(a: float, c: float) -> float:
        return a / c if c > 0 else float("nan")

    return {"episodes": float(n), "steps": steps, "z_nll": ratio(nll, steps),
            "reward_mse_pos": ratio(sq_pos, n_pos), "reward_steps_pos": n_pos,
            "reward_mse_rest": ratio(sq_rest, n_rest), "ends": tp + fn,
            "done_precision": ratio(tp, tp + fp), "done_recall": ratio(tp, tp + fn)}


def describe(q: dict[str, float], where: str) -> str:
    """One line for the terminal. A reward group with no steps (Doom: +1 on every step, so no "other"
    steps) and a done never predicted are said in words, not printed as nan."""
    n_pos, n_rest = int(q["reward_steps_pos"]), int(q["steps"] - q["reward_steps_pos"])
    pos = (f"{q['reward_mse_pos']:.3f} on {n_pos} positive-reward steps" if n_pos
           else "no positive-reward steps")
    rest = f"{q['reward_mse_rest']:.4f} on the {n_rest} others" if n_rest else "no other steps"
    precision = "n/a (never predicted)" if np.isnan(q["done_precision"]) else f"{q['done_precision']:.2f}"
    return (f"M on {int(q['episodes'])} {where} episodes: z NLL {q['z_nll']:.3f} nats/dim; reward MSE "
            f"{pos}, {rest}; done precision {precision}, "
            f"recall {q['done_recall']:.2f} ({int(q['ends'])} ends)")


def split_holdout(files: Sequence[Path | str], fraction: float) -> tuple[list[Path], list[Path]]:
    """(training, held-out) episode files: every k-th file held out, k = round(1 / fraction)
    (none when fraction is 0, or when that would leave fewer than 2 to train on)."""
    files = [Path(p) for p in files]
    if fraction <= 0:
        return files, []
    k = max(2, round(1 / fraction))
    held = [p for i, p in enumerate(files) if i % k == k - 1]
    if len(files) - len(held) < 2:
        return files, []
    return [p for i, p in enumerate(files) if i % k != k - 1], held
