"""M's quality report (m_quality.py) on hand-made episodes with a hand-set M, and in train_rnn's metrics."""

import math

import numpy as np
import pytest
import torch

from wm_fast.config import RNNConfig
from wm_fast.m_quality import describe, m_quality, split_holdout
from wm_fast.mdnrnn import MDNRNN
from wm_fast.shards import save_latents


def episodes(folder, z, rewards, dones):
    """One latent file per episode: mu = z (T+1, Z), zero actions, the given rewards and dones (T,)."""
    files = []
    for e, (mu, r, d) in enumerate(zip(z, rewards, dones)):
        p = folder / f"episode_{e:06d}.npz"
        t = len(r)
        save_latents(p, np.asarray(mu, np.float32), np.zeros((t + 1, mu.shape[1]), np.float32),
                     np.zeros((t, 3), np.float32), np.asarray(r, np.float32), np.asarray(d, np.float32), e)
        files.append(p)
    return files


def constant_m(reward: float, done_logit: float) -> MDNRNN:
    """M whose every prediction is fixed: mixture N(0, 1) in each dim, `reward`, `done_logit`."""
    m = MDNRNN(2, 3, hidden=4, n_gaussians=2, layout="per_dim")
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
        m.head.bias[-2], m.head.bias[-1] = reward, done_logit
    return m.eval()


def test_metrics_of_a_hand_made_episode(tmp_path):
    z = [np.array([[0, 0], [1, -1], [2, 0], [0, 3]], float), np.array([[0, 0], [1, 1]], float)]
    rewards = [[3.0, -0.1, -0.1], [3.0]]  # two "tile" steps, two others
    dones = [[0, 0, 1], [0]]
    files = episodes(tmp_path, z, rewards, dones)

    q = m_quality(constant_m(reward=1.0, done_logit=2.0), files)  # says "done" at every step
    nexts = np.concatenate([z[0][1:], z[1][1:]])  # the z_{t+1} M predicts
    assert q["steps"] == 4 and q["episodes"] == 2 and q["ends"] == 1
    assert q["z_nll"] == pytest.approx(0.5 * math.log(2 * math.pi) + 0.5 * np.mean(nexts ** 2), rel=1e-5)
    assert q["reward_mse_pos"] == pytest.approx(4.0) and q["reward_steps_pos"] == 2  # (1 - 3)^2
    assert q["reward_mse_rest"] == pytest.approx(1.1 ** 2)
    assert q["done_precision"] == pytest.approx(0.25) and q["done_recall"] == 1.0

    never = m_quality(constant_m(reward=0.0, done_logit=-2.0), files)
    assert math.isnan(never["done_precision"]) and never["done_recall"] == 0.0
    assert "2 held-out episodes" in describe(q, "held-out") and "recall 1.00" in describe(q, "held-out")
    assert "on the 2 others" in describe(q, "held-out")


def test_description_names_an_empty_reward_group_instead_of_nan(tmp_path):
    """Doom gives +1 on every step: there are no "other" steps, and the line says so."""
    files = episodes(tmp_path, [np.zeros((4, 2))], [[1.0, 1.0, 1.0]], [[0, 0, 1]])
    line = describe(m_quality(constant_m(reward=1.0, done_logit=-2.0), files), "held-out")
    assert "no other steps" in line and "nan" not in line and "0.000 on 3 positive-reward steps" in line


def test_every_kth_episode_is_held_out():
    files = [f"episode_{i:06d}.npz" for i in range(10)]
    train, held = split_holdout(files, 0.1)
    assert [p.name for p in held] == ["episode_000009.npz"] and len(train) == 9
    assert split_holdout(files, 0.0)[1] == [] and split_holdout(files[:2], 0.5)[1] == []  # keep 2 to train on
    train, held = split_holdout(files, 0.5)
    assert len(held) == 5 and not set(held) & set(train)


def test_train_rnn_reports_quality_on_its_held_out_episodes(tmp_path):
    from wm_fast.train_rnn import train_rnn

    rng = np.random.default_rng(0)
    z = [rng.normal(size=(9, 2)) for _ in range(4)]
    files = episodes(tmp_path, z, [[1.0] * 8] * 4, [[0] * 7 + [1]] * 4)
    cfg = RNNConfig(hidden=4, n_gaussians=2, seq_len=8, batch_size=2, epochs=1, holdout=0.5)
    m = train_rnn(files, tmp_path / "rnn", cfg, action_dim=3, progress=False, device="cpu")
    assert m["quality_on"] == "held-out" and m["quality_episodes"] == 2 and m["train_episodes"] == 2
    assert m["quality_ends"] == 2 and np.isfinite(m["quality_z_nll"])
