"""M's quality report (m_quality.py) on hand-made episodes with a hand-set M, and in train_rnn's metrics."""

import math

import numpy as np
import pytest
import torch

from wm_fast.config import RNNConfig
from wm_fast.m_quality import describe, m_quality, split_holdout
from wm_fast.mdnrnn import MDNRNN
from wm_fast.sequences import LatentEpisodes, smooth_rewards
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


def test_smoothed_rewards_of_a_hand_made_episode():
    """target_t = mean of r_t .. r_{t+k-1} (zero past the end): each tile's reward is spread over the k steps
    before it, and the sum survives but for the first steps' shares."""
    r = np.array([0.0, 0.0, 6.0, 0.0, 3.0], np.float32)
    assert np.allclose(smooth_rewards(r, 1), r)
    assert np.allclose(smooth_rewards(r, 3), [2.0, 2.0, 3.0, 1.0, 1.0])
    assert smooth_rewards(r, 3).sum() == pytest.approx(r.sum() + 0.0)  # no reward in the first k-1 steps
    assert np.allclose(smooth_rewards(np.array([3.0, 0, 0], np.float32), 3), [1.0, 0, 0])  # r_0 keeps 1/k
    with pytest.raises(ValueError, match="window must be >= 1"):
        smooth_rewards(r, 0)


def test_quality_with_smoothing_scores_the_smoothed_target_on_the_tile_steps(tmp_path):
    """With reward smoothing M is measured against the target it was trained on; steps still split by the
    env's reward (a tile step stays a tile step)."""
    z = [np.zeros((4, 2))]
    files = episodes(tmp_path, z, [[0.0, 0.0, 3.0]], [[0, 0, 1]])
    q = m_quality(constant_m(reward=1.0, done_logit=-2.0), files, reward_smoothing=3)  # targets 1, 1, 1
    assert q["reward_steps_pos"] == 1 and q["reward_mse_pos"] == pytest.approx(0.0)
    assert q["reward_mse_rest"] == pytest.approx(0.0)
    raw = m_quality(constant_m(reward=1.0, done_logit=-2.0), files)
    assert raw["reward_mse_pos"] == pytest.approx(4.0) and raw["reward_mse_rest"] == pytest.approx(1.0)
    batch = LatentEpisodes(files, reward_smoothing=3).gather(np.array([[0, 0, 3]]))
    assert torch.allclose(batch.rewards[:, 0], torch.ones(3))
    assert torch.allclose(batch.raw_rewards[:, 0], torch.tensor([0.0, 0.0, 3.0]))


def test_train_rnn_fits_the_smoothed_reward_when_asked(tmp_path):
    """Rewards 4 on every 4th step: their 4-step mean is 1 nearly everywhere (E[target^2] ~ 1), the raw reward
    has E[r^2] = 4; the same M, seed and batches see the smaller error with smoothing on."""
    from wm_fast.train_rnn import train_rnn

    rng = np.random.default_rng(0)
    z = [rng.normal(size=(17, 2)) for _ in range(4)]
    files = episodes(tmp_path, z, [[0.0, 0.0, 0.0, 4.0] * 4] * 4, [[0] * 15 + [1]] * 4)
    mse = {}
    for k in (1, 4):
        cfg = RNNConfig(hidden=4, n_gaussians=2, seq_len=16, batch_size=2, epochs=1, reward_smoothing=k)
        mse[k] = train_rnn(files, tmp_path / f"rnn{k}", cfg, action_dim=3, progress=False, device="cpu")["reward_mse"]
    assert mse[4] < 0.5 * mse[1]
