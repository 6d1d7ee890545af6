"""CartPole through the main pipeline (state observations: z is the normalized state, no V), and DQN."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from wm_fast.config import ConfigError
from wm_fast.envs import cartpole as env_mod
from wm_fast.envs import spec
from wm_fast.sequences import episode_windows

RESULTS = Path(__file__).resolve().parents[1] / "results"


# ---------------------------------------------------------------- env


def test_env_registered_and_steps():
    s = spec("cartpole")
    assert (s.action_dim, s.action_mapping, s.reward_source) == (2, "argmax", "alive")
    env = env_mod.make_env()
    obs = env.reset(seed=3)
    assert obs.shape == (4,) and obs.dtype == np.float32 and np.abs(obs).max() <= 0.05
    again = env_mod.make_env().reset(seed=3)
    np.testing.assert_array_equal(obs, again)
    _, r, term, trunc = env.step(np.array([0.0, 1.0], dtype=np.float32))  # one-hot: right
    assert r == 1.0 and not term and not trunc
    steps = 1
    while True:  # always pushing left ends by the pole falling or the cart leaving, long before 500
        _, _, term, trunc = env.step(0)
        steps += 1
        if term or trunc:
            break
    assert term and not trunc and steps < 100
    with pytest.raises(ValueError):
        env.step(2)
    env.close()


def test_env_truncates_at_max_steps():
    env = env_mod.make_env(max_steps=5)
    env.reset(seed=0)
    flags = [env.step(i % 2)[2:] for i in range(5)]
    assert flags[-1] == (False, True) and all(f == (False, False) for f in flags[:-1])


def test_normalize_scales_termination_bounds_to_one():
    z = env_mod.normalize(np.array([2.4, 2.0, env_mod.THETA_THRESHOLD, -2.0]))
    np.testing.assert_allclose(z, [1.0, 1.0, 1.0, -1.0], rtol=1e-6)


# ---------------------------------------------------------------- data and M


def test_windows_cover_first_and_last_step_of_every_episode():
    lengths = np.array([10, 200, 64, 65])
    w = episode_windows(lengths, 64, np.random.default_rng(0))
    for e, t in enumerate(lengths):
        mine = w[w[:, 0] == e]
        assert len(mine) == math.ceil(t / 64)
        assert (mine[:, 1] == 0).any()
        assert ((mine[:, 1] + mine[:, 2]) == t).any()  # the done label at the last step is trained on
        assert (mine[:, 1] + mine[:, 2] <= t).all()


def test_windows_can_leave_episode_ends_to_chance():
    w = episode_windows(np.array([500] * 20), 64, np.random.default_rng(0), end_windows=False)
    assert ((w[:, 1] + w[:, 2]) == 500).sum() < 5  # vs one per episode with end_windows


def test_real_agent_acts_like_the_dream_controller():
    """C reads [z_t, h_t] before M consumes (z_t, a_t), in the dream and in the real env alike."""
    from wm_fast.dream import DreamOptions, dream_reference
    from wm_fast.mdnrnn import MDNRNN
    from wm_fast.rollout.agent import BatchedAgent

    torch.manual_seed(0)
    m = MDNRNN(4, 2, hidden=8, n_gaussians=2).eval()
    params = torch.randn(1, (4 + 8) * 2 + 2)
    opts = DreamOptions(steps=20, rollouts=2, action_mapping="argmax", reward_source="alive", seed=1)
    res = dream_reference(m, params, torch.zeros(3, 4), torch.full((3, 4), -20.0), opts, return_trajectories=True)
    agent = BatchedAgent(lambda z: torch.as_tensor(z), m, "argmax", "zh", 2, np.zeros(2), np.ones(2))
    for slot in range(2):  # one slot per dream rollout
        agent.begin(slot, seed=slot, params=params[0].numpy())
    for t in range(20):
        a = agent.act(res.trajectories["z"][t, 0].numpy(), np.array([True, True]))
        np.testing.assert_array_equal(a, res.trajectories["action"][t, 0].numpy())


def test_exploration_of_a_discrete_mapping_is_epsilon_random_per_episode():
    from wm_fast.mdnrnn import MDNRNN
    from wm_fast.rollout.agent import BatchedAgent

    m = MDNRNN(4, 2, hidden=8, n_gaussians=2).eval()
    params = np.zeros((4 + 8) * 2 + 2, np.float32)
    params[-2] = 1.0  # C always prefers action 0

    def actions(eps: float, seed: int) -> np.ndarray:
        agent = BatchedAgent(lambda z: torch.as_tensor(z), m, "argmax", "zh", 1, np.zeros(2), np.ones(2))
        agent.begin(0, seed=seed, params=params, noise=eps)
        return np.stack([agent.act(np.zeros((1, 4), np.float32), np.array([True]))[0] for _ in range(400)])

    assert (actions(0.0, 1)[:, 0] == 1).all()
    a = actions(0.5, 1)
    assert 0.15 < a[:, 1].mean() < 0.35  # half random, of which half is action 1
    np.testing.assert_array_equal(a, actions(0.5, 1))
    assert not np.array_equal(a, actions(0.5, 2))


# ---------------------------------------------------------------- the main pipeline on CartPole


@pytest.fixture(scope="module")
def tiny_cartpole(tmp_path_factory):
    from wm_fast.cli import main

    run_dir = tmp_path_factory.mktemp("cartpole") / "run"
    main(["run", "--env", "cartpole", "--preset", "tiny", "--run-dir", str(run_dir), "--quiet"])
    return run_dir


def test_tiny_cartpole_runs_every_stage_with_an_identity_v(tiny_cartpole, capsys):
    from wm_fast.cli import main
    from wm_fast.shards import load_latents

    d = tiny_cartpole
    for stage in ("collect", "train-vae", "encode", "train-rnn", "train-controller", "evaluate"):
        assert json.loads((d / f"{stage}.json").read_text())["complete"], stage
    assert "identity" in json.loads((d / "train-vae.json").read_text())["metrics"]["skipped"]
    assert not (d / "vae").exists() and not (d / "episodes").exists()
    lat = load_latents(d / "latents" / "episode_000000.npz")  # collect wrote z = the normalized state
    assert lat["mu"].shape[1] == 4 and (lat["logvar"] == -20.0).all() and lat["dones"][-1] == 1.0
    assert np.abs(lat["mu"][0]).max() < 0.5 and lat["actions"].shape[1] == 2
    rounds = json.loads((d / "iterate.json").read_text())["rounds"]
    assert len(rounds) == 1 and rounds[0]["new_episodes"] == 4
    ev = json.loads((d / "evaluate.json").read_text())
    assert ev["controller"] == "iterate" and ev["episodes"] == 3 and 1 <= ev["mean"] <= 500

    main(["evaluate", "--env", "cartpole", "--run-dir", str(d), "--episodes", "4", "--seed-start", "10000000",
          "--no-video", "--quiet"])
    ev = json.loads((d / "evaluate.json").read_text())
    assert ev["episodes"] == 4 and ev["seeds"] == list(range(10_000_000, 10_000_004))
    assert ev["returns"] == [float(x) for x in ev["lengths"]]  # +1 per step
    main(["evaluate", "--run-dir", str(d), "--episodes", "4", "--seed-start", "10000000", "--no-video", "--quiet"])
    assert json.loads((d / "evaluate.json").read_text())["returns"] == ev["returns"]
    assert "evaluate" in capsys.readouterr().out


def test_a_rerun_skips_and_other_settings_are_refused(tiny_cartpole, capsys):
    from wm_fast.cli import main

    before = (tiny_cartpole / "train-controller.json").read_text()
    main(["run", "--env", "cartpole", "--preset", "tiny", "--run-dir", str(tiny_cartpole), "--quiet"])
    assert (tiny_cartpole / "train-controller.json").read_text() == before
    assert "train-rnn: already complete" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # CartPole has no `paper` preset, and the tiny run is not `quick`
        main(["run", "--env", "cartpole", "--preset", "paper", "--run-dir", str(tiny_cartpole), "--quiet"])
    with pytest.raises(SystemExit):
        main(["run", "--env", "cartpole", "--preset", "quick", "--run-dir", str(tiny_cartpole), "--quiet"])


def test_cartpole_presets_and_validation():
    import wm_fast

    cfg = wm_fast.get_preset("quick", env="cartpole")
    assert (cfg.env, cfg.rnn.mean_mse_weight, cfg.iterate.run_rounds, cfg.controller.common_random_numbers) == (
        "cartpole", 1000.0, 5, True)
    with pytest.raises(ConfigError, match="unknown preset 'paper' for cartpole"):
        wm_fast.get_preset("paper", env="cartpole")
    cfg.iterate.retrain_vae = True
    with pytest.raises(ConfigError, match="no V to retrain"):
        wm_fast.Run("/tmp/never", cfg)
    with pytest.raises(ConfigError, match="no envpool implementation"):
        from wm_fast.config import validate

        cfg.iterate.retrain_vae, cfg.env_backend = False, "envpool"
        validate(cfg)


# ---------------------------------------------------------------- DQN


def test_dqn_smoke_through_the_cli(tmp_path):
    from wm_fast.cli import main

    d = tmp_path / "dqn"
    main(["dqn", "--run-dir", str(d), "--preset", "tiny", "--quiet"])
    s = json.loads((d / "dqn_summary.json").read_text())
    assert s["method"] == "dqn" and s["real_episodes"] == 3 and 1 <= s["real_mean"] <= 500
    assert s["env_steps"] == s["train_env_steps"] + s["validation_env_steps"]
    main(["evaluate", "--env", "cartpole", "--run-dir", str(d), "--episodes", "2"])
    assert json.loads((d / "evaluate.json").read_text())["episodes"] == 2


def test_dqn_target_bootstraps_through_truncation_not_termination():
    from wm_fast.baselines.dqn import ReplayBuffer

    buf = ReplayBuffer(4, np.random.default_rng(0))
    for i in range(6):  # a ring: the first two are overwritten
        buf.add(np.full(4, i, np.float32), i % 2, 1.0, np.full(4, i + 1, np.float32), terminated=(i == 5))
    assert buf.size == 4 and sorted(buf.s[:, 0].tolist()) == [2, 3, 4, 5]
    s, a, r, s2, term = buf.sample(64)
    assert set(s[:, 0].tolist()) <= {2.0, 3.0, 4.0, 5.0}
    assert torch.equal(term, (s[:, 0] == 5).float())  # only the terminated transition stops the bootstrap


# ---------------------------------------------------------------- results/


def test_committed_cartpole_controllers_still_balance(tmp_path):
    """The committed M and C, scored by `wm-fast evaluate` on 20 seeds nobody trained or scored on."""
    from wm_fast.cli import main

    for name in ("cartpole", "cartpole_pipeline"):
        if not (RESULTS / name / "config.json").exists():
            continue
        d = shutil.copytree(RESULTS / name, tmp_path / name)
        main(["evaluate", "--env", "cartpole", "--run-dir", str(d), "--episodes", "20", "--seed-start", "20000000",
              "--no-video", "--quiet"])
        assert json.loads((d / "evaluate.json").read_text())["mean"] >= 475, name
