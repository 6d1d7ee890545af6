"""The vectorized real-environment path: VecEnv slots, the batched agent and run_episodes."""

import numpy as np
import pytest

from wm_fast import envs
from wm_fast.rollout import EpisodeRequest, RandomActor, run_episodes
from wm_fast.rollout.agent import BatchedAgent, vae_encoder

try:
    import envpool  # noqa: F401

    HAVE_ENVPOOL = True
except ImportError:
    HAVE_ENVPOOL = False
needs_envpool = pytest.mark.skipif(not HAVE_ENVPOOL, reason="envpool is not installed (pip install 'wm-fast[envpool]')")

SEEDS = [3, 11, 5, 8, 2]


def random_episodes(num_envs: int, backend: str = "gymnasium", steps: int = 25, seeds=SEEDS):
    with envs.make_vec("carracing", num_envs, steps, backend) as vec:
        actor = RandomActor("brownian", num_envs, vec.action_low, vec.action_high)
        return run_episodes(vec, [EpisodeRequest(s, keep=True) for s in seeds], actor)


def agent_episodes(fake_models, num_envs: int, params: np.ndarray, env: str = "carracing", steps: int = 25,
                   noise: float = 0.0, lengths: list[int] | None = None, encoded: list[int] | None = None):
    """SEEDS' episodes with V, M and C; `lengths`: each request's max_steps; `encoded` gets the rows of
    each call of V."""
    from wm_fast.train_rnn import load_mdnrnn

    vae_path, rnn_path = fake_models
    encode = vae_encoder(vae_path)

    def counting_encode(frames):
        if encoded is not None:
            encoded.append(len(frames))
        return encode(frames)

    with envs.make_vec(env, num_envs, steps) as vec:
        agent = BatchedAgent(counting_encode, load_mdnrnn(rnn_path), "carracing", "zh", num_envs,
                             vec.action_low, vec.action_high)
        reqs = [EpisodeRequest(s, params=params[i], noise=noise, keep=True,
                               max_steps=None if lengths is None else lengths[i]) for i, s in enumerate(SEEDS)]
        return run_episodes(vec, reqs, agent)


def same(a, b):
    assert [r["return"] for r in a] == [r["return"] for r in b]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["observations"], y["observations"])
        np.testing.assert_array_equal(x["actions"], y["actions"])


def test_random_episodes_do_not_depend_on_the_number_of_envs():
    one = random_episodes(1)
    same(one, random_episodes(3))
    assert all(r["steps"] == 25 and r["truncated"] and not r["terminated"] for r in one)
    assert one[0]["observations"].shape == (26, 64, 64, 3) and one[0]["actions"].shape == (25, 3)


def test_agent_episodes_do_not_depend_on_the_number_of_envs(fake_models):
    p = np.random.default_rng(0).normal(0, 0.3, (len(SEEDS), 147)).astype(np.float32)
    one = agent_episodes(fake_models, 1, p)
    same(one, agent_episodes(fake_models, 3, p))
    same(one, agent_episodes(fake_models, 5, p))
    noisy = agent_episodes(fake_models, 2, p, noise=0.3)
    same(noisy, agent_episodes(fake_models, 5, p, noise=0.3))
    assert not np.array_equal(noisy[0]["actions"], one[0]["actions"])


def test_the_agent_skips_a_block_whose_slots_all_ended_and_nothing_else_changes(fake_models):
    p = np.random.default_rng(1).normal(0, 0.3, (len(SEEDS), 147)).astype(np.float32)
    lengths = [25, 25, 25, 25, 6]
    encoded: list[int] = []
    five = agent_episodes(fake_models, 5, p, lengths=lengths, encoded=encoded)
    same(agent_episodes(fake_models, 1, p, lengths=lengths), five)
    assert [r["steps"] for r in five] == lengths
    # 5 slots are two blocks of 4 rows; the second holds slot 4 alone, whose episode ends after 6 steps
    assert encoded == [4, 4] * 6 + [4] * 19


def test_the_one_episode_loop_matches_a_plain_gymnasium_loop():
    """run_episodes on a VecEnv gives what stepping one env by hand gives."""
    from wm_fast.rollout.policies import make_policy, policy_rng

    got = random_episodes(2, seeds=[7])[0]
    env = envs.make("carracing", max_steps=25)
    policy = make_policy("brownian", env.action_low, env.action_high)
    policy.reset(policy_rng(7))
    env.reset(7)
    total = 0.0
    for _ in range(25):
        _, r, term, trunc = env.step(policy.act())
        total += r
    env.close()
    assert got["return"] == total


def test_a_vecenv_never_steps_an_ended_slot():
    with envs.make_vec("carracing", 2, 3) as vec:
        vec.reset(0, 1)
        with pytest.raises(RuntimeError, match="no running episode"):
            vec.step(np.zeros((2, 3), np.float32), np.array([True, True]))
        for _ in range(3):
            vec.step(np.zeros((2, 3), np.float32), np.array([True, False]))
        assert not vec.running[0]
        with pytest.raises(RuntimeError, match="reset them first"):
            vec.step(np.zeros((2, 3), np.float32), np.array([True, False]))


def test_unknown_backend_and_missing_implementation_are_config_errors():
    from wm_fast.config import ConfigError

    with pytest.raises(ConfigError, match="unknown env backend 'gym'"):
        envs.make_vec("carracing", 1, 10, "gym")
    with pytest.raises(ConfigError, match="no envpool implementation"):
        envs.make_vec("cartpole", 1, 10, "envpool")


@needs_envpool
def test_envpool_episodes_depend_on_their_seed_only_and_differ_from_gymnasium():
    a = random_episodes(1, "envpool")
    same(a, random_episodes(3, "envpool"))
    g = random_episodes(1, "gymnasium")
    assert not np.array_equal(a[0]["observations"][0], g[0]["observations"][0])
    assert a[0]["observations"].shape == g[0]["observations"].shape


def test_missing_envpool_names_the_extra(monkeypatch):
    import builtins

    from wm_fast.config import ConfigError

    real_import = builtins.__import__

    def no_envpool(name, *a, **k):
        if name == "envpool":
            raise ImportError("No module named 'envpool'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_envpool)
    with pytest.raises(ConfigError, match=r"pip install 'wm-fast\[envpool\]'"):
        envs.make("carracing", backend="envpool", max_steps=10)


@needs_envpool
def test_a_tiny_run_on_envpool_records_its_backend_and_refuses_mixing(tmp_path):
    import json

    from wm_fast.cli import main

    d = tmp_path / "D"
    main(["run", "--env", "carracing", "--env-backend", "envpool", "--preset", "tiny", "--run-dir", str(d), "--quiet"])
    for stage in ("collect", "train-vae", "encode", "train-rnn", "train-controller", "evaluate"):
        record = json.loads((d / f"{stage}.json").read_text())
        assert record["env_backend"] == "envpool" and record["config"]["env_backend"] == "envpool", stage
    assert json.loads((d / "evaluate.json").read_text())["env_backend"] == "envpool"
    with pytest.raises(SystemExit):  # a run never mixes backends
        main(["collect", "--run-dir", str(d), "--env-backend", "gymnasium", "--quiet"])
    main(["evaluate", "--run-dir", str(d), "--env-backend", "gymnasium", "--episodes", "1", "--no-video", "--quiet"])
    assert json.loads((d / "evaluate.json").read_text())["env_backend"] == "gymnasium"  # named where it scored


class _TileEnv:
    """Rewards +1 on steps 1-3 and 7, else -0.1 (a car that leaves the track, comes back once)."""

    action_dim = 3
    action_low = np.array([-1.0, 0.0, 0.0], np.float32)
    action_high = np.ones(3, np.float32)

    def __init__(self, max_steps: int = 30, render_mode=None):
        self.max_steps, self.t = max_steps, 0

    def reset(self, seed: int) -> np.ndarray:
        self.t = 0
        return np.zeros((64, 64, 3), np.uint8)

    def step(self, action):
        self.t += 1
        reward = 1.0 if self.t in (1, 2, 3, 7) else -0.1
        return np.zeros((64, 64, 3), np.uint8), reward, False, self.t >= self.max_steps

    def render(self):
        return np.zeros((64, 64, 3), np.uint8)

    def close(self):
        pass


def tile_env(max_steps: int = 30, render_mode=None) -> _TileEnv:
    return _TileEnv(max_steps)


@pytest.mark.parametrize("patience,steps,stopped", [(0, 30, False), (3, 6, True), (4, 11, True), (30, 30, False)])
def test_a_hopeless_episode_stops_after_patience_steps_without_a_reward(patience, steps, stopped):
    with envs.make_vec(f"{__name__}:tile_env", 2, 30) as vec:
        actor = RandomActor("iid", 2, vec.action_low, vec.action_high)
        out = run_episodes(vec, [EpisodeRequest(1, patience=patience)], actor)[0]
    assert (out["steps"], out["stopped_early"], out["truncated"]) == (steps, stopped, True)
    rewards = [1.0 if t in (1, 2, 3, 7) else -0.1 for t in range(1, steps + 1)]
    assert out["return"] == pytest.approx(sum(rewards))  # what it earned until the stop


@needs_envpool
def test_real_cma_es_on_envpool_for_a_gymnasium_run_is_named(tiny_run_dir, tmp_path):
    import json
    import shutil

    from wm_fast.cli import main

    d = shutil.copytree(tiny_run_dir, tmp_path / "D")
    main(["train-controller", "--run-dir", str(d), "--mode", "real", "--real.env-backend", "envpool",
          "--real.generations", "1", "--real.popsize", "4", "--real.rollouts", "1", "--real.eval-rollouts", "2",
          "--real.patience", "10", "--real.workers", "1", "--quiet"])
    record = json.loads((d / "train-controller-real.json").read_text())
    assert record["env_backend"] == "envpool" and record["config"]["real"]["env_backend"] == "envpool"
    assert json.loads((d / "collect.json").read_text())["env_backend"] == "gymnasium"  # the run's own stays


def test_the_drive_policy_keeps_the_gas_on_and_brakes_rarely():
    from wm_fast.config import ConfigError
    from wm_fast.rollout.policies import make_policy, policy_rng

    policy = make_policy("drive", np.array([-1, 0, 0], np.float32), np.array([1, 1, 1], np.float32))
    policy.reset(policy_rng(0))
    actions = np.stack([policy.act() for _ in range(2000)])
    braking = actions[:, 2] > 0
    assert 0.0 < braking.mean() < 0.15 and (actions[braking, 1] == 0).all()
    assert actions[~braking, 1].min() >= 0.3 and abs(actions[:, 0].mean()) < 0.3
    with pytest.raises(ConfigError, match="CarRacing's 3 actions"):
        make_policy("drive", np.zeros(1, np.float32), np.ones(1, np.float32))
