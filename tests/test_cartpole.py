"""CartPole: the state env, the state world model pipeline (tiny, through the CLI), DQN."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from wm_fast import cartpole as cp
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


def test_episode_files_hold_states_actions_and_done_at_the_end(tmp_path):
    from wm_fast.shards import load_latents

    ep = cp.play(np.array([0]))[0]  # random policy
    cp.save_episode(tmp_path / "e.npz", ep)
    d = load_latents(tmp_path / "e.npz")
    t = len(ep["actions"])
    assert d["mu"].shape == (t + 1, 4) and d["actions"].shape == (t, 2)
    np.testing.assert_allclose(d["mu"], env_mod.normalize(ep["states"]))
    np.testing.assert_array_equal(d["actions"].argmax(1), ep["actions"])
    assert ep["terminated"] and d["dones"][-1] == 1.0 and d["dones"][:-1].sum() == 0
    assert ep["ret"] == t  # +1 per step, the terminating step included


def test_windows_cover_first_and_last_step_of_every_episode():
    lengths = np.array([10, 200, 64, 65])
    w = episode_windows(lengths, 64, np.random.default_rng(0))
    for e, t in enumerate(lengths):
        mine = w[w[:, 0] == e]
        assert len(mine) == math.ceil(t / 64)
        assert (mine[:, 1] == 0).any()
        assert ((mine[:, 1] + mine[:, 2]) == t).any()  # the done label at the last step is trained on
        assert (mine[:, 1] + mine[:, 2] <= t).all()


@pytest.mark.parametrize("model", ["mdn", "lstm"])
def test_skip_path_starts_m_as_identity_and_stays_fixed(model, tmp_path):
    cfg = cp.tiny_config(model=model, hidden=8, skip=0.1)
    m = cp.make_model(cfg)
    z = torch.rand(5, 3, 4) * 2 - 1
    a = torch.nn.functional.one_hot(torch.randint(2, (5, 3)), 2).float()
    # with only the skip path (other units' head weights zeroed) the mean is z itself, up to tanh curvature
    with torch.no_grad():
        m.head.weight[:, 4:].zero_()
        m.head.bias.zero_()
    out, _ = m(z, a)
    assert torch.allclose(out.mu, z.unsqueeze(-2).expand_as(out.mu), atol=0.01)
    masks = cp.skip_masks(m)
    files = []
    for i, ep in enumerate(cp.play(np.arange(6))):
        files.append(tmp_path / f"r00_{i:05d}.npz")
        cp.save_episode(files[-1], ep)
    cp.train_model(files, tmp_path / "rnn.pt", cfg, steps=3)
    from wm_fast.train_rnn import load_mdnrnn

    after = load_mdnrnn(tmp_path / "rnn.pt").state_dict()
    torch.manual_seed(0)
    fresh = cp.make_model(cfg).state_dict()  # training starts from make_model's init: compare fixed entries
    for name, mask in masks.items():
        if name == "head.weight":
            k = m.n_gaussians
            off = k if m.layout == "shared" else k * 4
            fixed = slice(off, off + k * 4)
            assert torch.equal(after[name][fixed, :4], fresh[name][fixed, :4])
        elif name.startswith("lstm."):
            assert torch.equal(after[name][mask == 0], fresh[name][mask == 0]), name


def test_deterministic_lstm_dreams_without_noise(tmp_path):
    from wm_fast.mdnrnn import sample_mdn

    cfg = cp.tiny_config(model="lstm")
    m = cp.make_model(cfg)
    cp.freeze_sigma(m, 1e-4)
    out, _ = m.step(torch.zeros(8, 4), torch.eye(2)[[0, 1] * 4])
    z = sample_mdn(out, 1.0, m.layout)
    torch.testing.assert_close(z, out.mu[:, 0], atol=1e-3, rtol=0)


def test_mirror_doubles_and_negates(tmp_path):
    from wm_fast.sequences import LatentEpisodes

    files = []
    for i, ep in enumerate(cp.play(np.arange(3))):
        files.append(tmp_path / f"r00_{i:05d}.npz")
        cp.save_episode(files[-1], ep)
    e = LatentEpisodes(files)
    n, steps = len(e), e.total_steps
    cp.add_mirrored(e)
    assert len(e) == 2 * n and e.total_steps == 2 * steps
    b = e.gather(np.array([[0, 0, int(e.lengths[0])], [n, 0, int(e.lengths[0])]]))
    torch.testing.assert_close(b.mu[:, 1], -b.mu[:, 0])
    torch.testing.assert_close(b.actions[:, 1], b.actions[:, 0].flip(-1))
    torch.testing.assert_close(b.dones[:, 1], b.dones[:, 0])


def test_real_agent_acts_like_the_dream_controller():
    """C reads [z_t, h_t] before M consumes (z_t, a_t), in the dream and in the real env alike."""
    from wm_fast.dream import DreamOptions, dream_reference

    torch.manual_seed(0)
    m = cp.make_model(cp.tiny_config(hidden=8)).eval()
    params = torch.randn(1, (4 + 8) * 2 + 2)
    opts = DreamOptions(steps=20, rollouts=2, action_mapping="argmax", reward_source="alive", seed=1)
    res = dream_reference(m, params, torch.zeros(3, 4), torch.full((3, 4), -20.0), opts, return_trajectories=True)
    agent = cp.Agent(m, params[0])
    agent.reset(2)
    for t in range(20):
        a = agent.act(res.trajectories["z"][t, 0].numpy())
        np.testing.assert_array_equal(a, res.trajectories["action"][t, 0].argmax(-1).numpy())


# ---------------------------------------------------------------- the pipeline, through the CLI


@pytest.fixture(scope="module")
def tiny_cartpole(tmp_path_factory):
    from wm_fast.cli import main

    run_dir = tmp_path_factory.mktemp("cartpole") / "run"
    main(["cartpole", "--run-dir", str(run_dir), "--preset", "tiny", "--dream-backend", "torch", "--quiet"])
    return run_dir


def test_tiny_cartpole_end_to_end_through_the_cli(tiny_cartpole, capsys):
    from wm_fast.cli import main

    d = tiny_cartpole
    s = json.loads((d / "summary.json").read_text())
    cfg = cp.tiny_config()
    assert s["model"] == "mdn" and s["n_rounds"] == cfg.rounds == len(s["rounds"]) - 1
    assert s["real_episodes"] == cfg.eval_episodes and s["real_seed_start"] >= cp.TRAIN_SEED_LIMIT
    assert 1 <= s["real_mean"] <= 500 and 1 <= s["dream_mean"] <= 500
    assert s["env_steps"] == sum(c["steps"] for c in s["collect"]) > 0
    for f in ("rnn.pt", "controller.pt", "cartpole.json", "round_00/controller/log.jsonl", "round_01/round.json"):
        assert (d / f).exists(), f
    assert len(list((d / "episodes").glob("r01_*.npz"))) == cfg.round_episodes

    main(["evaluate", "--env", "cartpole", "--run-dir", str(d), "--episodes", "4", "--seed-start", "10000000"])
    ev = json.loads((d / "evaluate.json").read_text())
    assert ev["episodes"] == 4 and ev["seeds"] == [10_000_000, 10_000_003] and len(ev["returns"]) == 4
    assert "real mean return" in capsys.readouterr().out
    # the run dir alone (no --env) is recognised as a CartPole run, and evaluation is deterministic
    main(["evaluate", "--run-dir", str(d), "--episodes", "4", "--seed-start", "10000000"])
    assert json.loads((d / "evaluate.json").read_text())["returns"] == ev["returns"]


def test_wm_fast_run_with_env_cartpole_runs_the_cartpole_pipeline(tmp_path):
    from wm_fast.cli import main

    main(["run", "--env", "cartpole", "--preset", "tiny", "--run-dir", str(tmp_path / "r"), "--quiet"])
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["real_episodes"] == cp.tiny_config().eval_episodes
    with pytest.raises(SystemExit):  # CartPole has no `paper` preset: a clean CLI error
        main(["run", "--env", "cartpole", "--preset", "paper", "--run-dir", str(tmp_path / "p"), "--quiet"])


def test_rerun_resumes_and_other_settings_are_refused(tiny_cartpole):
    before = (tiny_cartpole / "summary.json").read_text()
    s = cp.run_cartpole(tiny_cartpole, cp.tiny_config(backend="torch"), progress=False, log=lambda *_: None)
    assert (tiny_cartpole / "summary.json").read_text() == before and s["real_mean"] == json.loads(before)["real_mean"]
    with pytest.raises(ConfigError, match="hidden"):
        cp.run_cartpole(tiny_cartpole, cp.tiny_config(hidden=9), progress=False)


def test_interrupted_round_resumes(tmp_path):
    cfg = cp.tiny_config(backend="torch", rounds=0)
    cp.run_cartpole(tmp_path, cfg, progress=False, log=lambda *_: None)
    first = json.loads((tmp_path / "summary.json").read_text())
    # lose everything after M of round 0: C, the round record and the summary
    import shutil

    shutil.rmtree(tmp_path / "round_00" / "controller")
    for f in ("round_00/round.json", "round_00/controller.pt", "summary.json", "rnn.pt", "controller.pt"):
        (tmp_path / f).unlink()
    again = cp.run_cartpole(tmp_path, cfg, progress=False, log=lambda *_: None)
    assert again["real_returns"] == first["real_returns"] and again["dream_mean"] == first["dream_mean"]


def test_windows_can_leave_episode_ends_to_chance():
    w = episode_windows(np.array([500] * 20), 64, np.random.default_rng(0), end_windows=False)
    assert ((w[:, 1] + w[:, 2]) == 500).sum() < 5  # vs one per episode with end_windows


def test_set_overrides_any_field():
    cfg = cp.get_config("tiny", settings=["end_windows=false", "burn_in=3", "temperature=1.15"])
    assert (cfg.end_windows, cfg.burn_in, cfg.temperature, cfg.preset) == (False, 3, 1.15, "tiny")
    with pytest.raises(ConfigError, match="not a valid int"):
        cp.get_config("tiny", settings=["burn_in=x"])


def test_config_validation():
    with pytest.raises(ConfigError):
        cp.get_config("paper")
    with pytest.raises(ConfigError):
        cp.get_config("tiny", eval_seed_start=5)
    with pytest.raises(ConfigError):
        cp.get_config("tiny", explore=1.5)


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


def test_results_rows_are_complete():
    path = RESULTS / "cartpole.json"
    if not path.exists():
        pytest.skip("results/cartpole.json not written yet")
    out = json.loads(path.read_text())
    methods = {r["method"] for r in out["rows"]}
    assert {"lstm_dream", "mdn_dream", "mdn_dream_iterative", "dqn"} <= methods
    for r in out["rows"]:
        assert set(r) >= {"method", "real_mean", "real_std", "dream_mean", "env_steps", "wall_s", "command", "commit"}
        assert r["command"].startswith("wm-fast ") and r["real_episodes"] == 100
        assert (r["dream_mean"] is None) == r["method"].startswith("dqn")
    assert out["best_reevaluated"]["seeds"][0] >= 10_000_000


def test_committed_best_controller_still_balances():
    """The best dream row's committed M and C, on 20 seeds nobody trained or scored on."""
    d = RESULTS / "cartpole"
    if not (d / "controller.pt").exists():
        pytest.skip("results/cartpole/ not written yet")
    r = cp.score(cp.load_agent(d), seed_start=20_000_000, episodes=20)
    assert r["mean"] >= 475
