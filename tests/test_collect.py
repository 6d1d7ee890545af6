"""Environments and data collection: preprocessing, policies, shards, resume, kill -9, errors."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from wm_fast import envs
from wm_fast.config import CollectConfig, ConfigError
from wm_fast.envs.carracing import preprocess
from wm_fast.rollout import EpisodeRequest, RandomActor, run_episodes
from wm_fast.rollout.collect import CollectError, collect
from wm_fast.rollout.policies import POLICY_NAMES, make_policy, policy_rng
from wm_fast.shards import list_episodes, load_episode
from wm_fast.storage import CorruptShardError

pytestmark = pytest.mark.filterwarnings("ignore:builtin type .* has no __module__ attribute:DeprecationWarning")

PYTHON_DIR = Path(__file__).resolve().parents[1] / "python"


def _cfg(**kw) -> CollectConfig:
    base = dict(episodes=3, max_steps=30, workers=1, envs_per_worker=1, seed=5, policy="brownian")
    base.update(kw)
    return CollectConfig(**base)


def _fingerprint(path: Path) -> tuple[int, int, str]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------- fake environments
# Small numpy environments for the error paths, referenced as "<this module>:<factory>"
# so that spawned workers can import them.


class _FakeEnv:
    name = "fake"
    action_dim = 2
    action_low = np.array([-1.0, 0.0], dtype=np.float32)
    action_high = np.array([1.0, 1.0], dtype=np.float32)

    def __init__(self, max_steps: int, fail: str = "") -> None:
        self.max_steps, self.fail, self.t = max_steps, fail, 0

    def reset(self, seed: int) -> np.ndarray:
        self.t = 0
        return np.full((64, 64, 3), seed % 256, dtype=np.uint8)

    def step(self, action):
        self.t += 1
        if self.t == 3 and self.fail == "raise":
            raise RuntimeError("boom from the fake env")
        if self.t == 3 and self.fail == "exit":
            os._exit(7)
        return np.full((64, 64, 3), self.t, dtype=np.uint8), 1.0, False, self.t >= self.max_steps

    def render(self) -> np.ndarray:
        return np.zeros((96, 96, 3), dtype=np.uint8)

    def close(self) -> None:
        pass


def raising_env(max_steps: int = 1000, render_mode=None) -> _FakeEnv:
    return _FakeEnv(max_steps, fail="raise")


def exiting_env(max_steps: int = 1000, render_mode=None) -> _FakeEnv:
    return _FakeEnv(max_steps, fail="exit")


# --------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def shards_w1(tmp_path_factory) -> tuple[Path, dict]:
    """3 CarRacing episodes of 30 steps, seed 5, collected in-process."""
    out = tmp_path_factory.mktemp("w1")
    return out, collect(out, _cfg(), progress=False)


# --------------------------------------------------------------------- environment


def test_preprocess_shape_and_drops_dashboard():
    obs = np.zeros((96, 96, 3), dtype=np.uint8)
    obs[:84] = (10, 200, 30)  # the playfield
    obs[84:] = (255, 0, 255)  # the dashboard
    out = preprocess(obs)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert (out == np.array([10, 200, 30], dtype=np.uint8)).all()  # no dashboard colour leaks in

    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    a, b = preprocess(noise), preprocess(noise.copy())
    assert np.array_equal(a, b)
    # exact area average of the 84x96 crop (float64 reference), up to rounding
    ref = np.empty((64, 64, 3))
    crop = noise[:84].astype(np.float64)
    for i in range(64):
        r0, r1 = i * 84 / 64, (i + 1) * 84 / 64
        for j in range(64):
            c0, c1 = j * 1.5, (j + 1) * 1.5
            wr = np.clip(np.minimum(r1, np.arange(1, 85)) - np.maximum(r0, np.arange(84)), 0, None)
            wc = np.clip(np.minimum(c1, np.arange(1, 97)) - np.maximum(c0, np.arange(96)), 0, None)
            ref[i, j] = np.einsum("r,c,rck->k", wr, wc, crop) / (wr.sum() * wc.sum())
    assert np.abs(a - ref).max() <= 0.5 + 1e-3

    with pytest.raises(ValueError, match="96, 96, 3"):
        preprocess(np.zeros((64, 64, 3), dtype=np.uint8))


def test_carracing_env_contract():
    env = envs.make("carracing", max_steps=5)
    try:
        assert env.action_dim == 3 == envs.spec("carracing").action_dim
        assert envs.spec("carracing").action_mapping == "carracing"
        np.testing.assert_array_equal(env.action_low, [-1, 0, 0])
        np.testing.assert_array_equal(env.action_high, [1, 1, 1])
        f0 = env.reset(3)
        assert f0.shape == (64, 64, 3) and f0.dtype == np.uint8
        assert np.array_equal(f0, preprocess(env.render()))  # render: the raw 96x96 frame
        flags = []
        for _ in range(5):
            frame, reward, terminated, truncated = env.step(np.array([0.0, 1.0, 0.0], dtype=np.float32))
            assert frame.shape == (64, 64, 3) and isinstance(reward, float)
            flags.append((terminated, truncated))
        assert flags[-1] == (False, True) and not any(t for _, t in flags[:-1])
        with pytest.raises(ValueError, match="shape"):
            env.step(np.zeros(2, dtype=np.float32))
        assert np.array_equal(env.reset(3), f0)  # same seed, same track
    finally:
        env.close()


def test_unknown_env_name_raises_config_error(tmp_path):
    with pytest.raises(ConfigError, match="'pong'.*carracing"):
        envs.make("pong")
    with pytest.raises(ConfigError, match="'pong'.*carracing"):
        envs.spec("pong")
    with pytest.raises(ConfigError, match="pong"):
        collect(tmp_path / "x", _cfg(), env_name="pong", progress=False)
    assert not (tmp_path / "x").exists()
    with pytest.raises(ConfigError, match="policy"):
        collect(tmp_path / "y", _cfg(policy="sideways"), progress=False)


def test_envs_import_is_lazy():
    code = "import sys, wm_fast.envs, wm_fast.rollout.collect, wm_fast.real; print('Box2D' in sys.modules, 'gymnasium' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(PYTHON_DIR)},
                         capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# --------------------------------------------------------------------- policies


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_policies_stay_in_box_and_are_deterministic(name):
    low = np.array([-1.0, 0.0, 0.0, -3.0], dtype=np.float32)
    high = np.array([1.0, 1.0, 0.5, -2.0], dtype=np.float32)
    if name == "drive":  # CarRacing's (steer, gas, brake) only; the brake box is narrowed as above
        low, high = low[:3], high[:3]

    def run(seed: int) -> np.ndarray:
        pol = make_policy(name, low, high)
        pol.reset(policy_rng(seed))
        return np.stack([pol.act() for _ in range(400)])

    a = run(11)
    assert a.dtype == np.float32 and a.shape == (400, len(low))
    assert (a >= low).all() and (a <= high).all()
    np.testing.assert_array_equal(a, run(11))
    assert not np.array_equal(a, run(12))
    changes = np.any(np.diff(a, axis=0) != 0, axis=1)
    if name == "iid":
        assert changes.all()
    if name == "brownian":  # small steps: a clipped random walk with sqrt(1/50) ~ 0.14 std
        assert np.abs(np.diff(a, axis=0)).max() < 1.0
        assert a.std(axis=0).min() > 0.05


def test_held_policy_holds_actions_for_1_to_10_steps():
    pol = make_policy("held", np.array([-1.0, 0.0, 0.0]), np.array([1.0, 1.0, 1.0]))
    pol.reset(policy_rng(0))
    a = np.stack([pol.act() for _ in range(2000)])
    change = np.flatnonzero(np.any(np.diff(a, axis=0) != 0, axis=1)) + 1
    runs = np.diff(np.concatenate([[0], change]))  # complete runs only
    assert runs.min() >= 1 and runs.max() <= 10
    assert 4.5 < runs.mean() < 6.5  # uniform on 1..10 has mean 5.5
    assert (runs > 1).mean() > 0.8


def test_an_episode_request_truncates_at_its_max_steps():
    with envs.make_vec("carracing", 1, 1000) as vec:
        actor = RandomActor("iid", 1, vec.action_low, vec.action_high)
        ep = run_episodes(vec, [EpisodeRequest(1, keep=True, max_steps=12)], actor)[0]
    assert ep["observations"].shape == (13, 64, 64, 3) and ep["actions"].shape == (12, 3)
    assert ep["rewards"].shape == (12,) and ep["truncated"] and not ep["terminated"] and ep["seed"] == 1


# --------------------------------------------------------------------- collect


def test_collected_shards_are_consistent(shards_w1):
    out, stats = shards_w1
    assert stats["collected_now"] == 3 and stats["skipped_existing"] == 0 and stats["episodes"] == 3
    assert stats["frames"] == 3 * 31 and stats["frames_per_s"] > 0 and stats["episodes_per_s"] > 0
    found = list_episodes(out)
    assert sorted(found) == [0, 1, 2]
    for i, path in found.items():
        ep = load_episode(path)
        t = ep["actions"].shape[0]
        assert ep["frames"].shape == (t + 1, 64, 64, 3) and ep["frames"].dtype == np.uint8
        assert ep["actions"].shape == (t, 3) and ep["rewards"].shape == (t,)
        assert t == 30 and bool(ep["truncated"])
        assert int(ep["seed"]) == 5 + i
        assert (ep["actions"] >= [-1, 0, 0]).all() and (ep["actions"] <= 1).all()
    a, b = load_episode(found[0]), load_episode(found[1])
    assert not np.array_equal(a["frames"], b["frames"])  # different seeds, different tracks


@pytest.mark.parametrize("workers,envs_per_worker", [(2, 1), (1, 3)])
def test_collect_is_deterministic_across_workers_and_env_slots(shards_w1, tmp_path, workers, envs_per_worker):
    out1, first = shards_w1
    assert (first["workers"], first["envs_per_worker"]) == (1, 1)
    stats = collect(tmp_path, _cfg(workers=workers, envs_per_worker=envs_per_worker), progress=True)
    assert stats["collected_now"] == 3
    assert (stats["workers"], stats["envs_per_worker"]) == (workers, 3 // workers)
    for i, path in list_episodes(tmp_path).items():
        a, b = load_episode(path), load_episode(out1 / path.name)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"episode {i} {key}")


def test_resume_keeps_finished_episodes(tmp_path):
    first = collect(tmp_path, _cfg(episodes=2, max_steps=20), progress=False)
    assert first["collected_now"] == 2
    before = {i: _fingerprint(p) for i, p in list_episodes(tmp_path).items()}
    stats = collect(tmp_path, _cfg(episodes=4, max_steps=20), progress=False)
    assert stats["collected_now"] == 2 and stats["skipped_existing"] == 2 and stats["episodes"] == 4
    after = list_episodes(tmp_path)
    assert sorted(after) == [0, 1, 2, 3]
    for i, fp in before.items():
        assert _fingerprint(after[i]) == fp
    again = collect(tmp_path, _cfg(episodes=4, max_steps=20), progress=False)
    assert again["collected_now"] == 0 and again["skipped_existing"] == 4


def test_resume_with_other_settings_is_refused(tmp_path):
    collect(tmp_path, _cfg(episodes=1, max_steps=10), progress=False)
    with pytest.raises(ConfigError, match="max_steps: 10 -> 20"):
        collect(tmp_path, _cfg(episodes=2, max_steps=20), progress=False)
    with pytest.raises(ConfigError, match="policy: 'brownian' -> 'iid'"):
        collect(tmp_path, _cfg(episodes=2, max_steps=10, policy="iid"), progress=False)


def test_kill_9_then_resume(tmp_path):
    out = tmp_path / "episodes"
    settings = dict(episodes=8, max_steps=150, workers=2, envs_per_worker=1, seed=3, policy="brownian")
    code = textwrap.dedent(f"""
        from wm_fast.config import CollectConfig
        from wm_fast.rollout.collect import collect
        collect({str(out)!r}, CollectConfig(**{settings!r}), progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(PYTHON_DIR)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while len(list_episodes(out)) < 2:
            assert proc.poll() is None, "the collector exited before it was killed"
            assert time.monotonic() < deadline, "no episode was written in time"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # let the workers go down with the group
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)

    before = {i: _fingerprint(p) for i, p in list_episodes(out).items()}
    assert 2 <= len(before) < 8
    (out / ".episode_000007.npz.leftover.tmp").write_bytes(b"half a shard")

    stats = collect(out, CollectConfig(**settings), progress=False)
    assert stats["collected_now"] == 8 - len(before)
    assert stats["skipped_existing"] == len(before)
    assert stats["episodes"] == 8 and stats["removed_temp"] >= 1
    after = list_episodes(out)
    assert sorted(after) == list(range(8))
    for i, fp in before.items():
        assert _fingerprint(after[i]) == fp, f"episode {i} was rewritten"
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))
    for i, path in after.items():
        ep = load_episode(path)
        assert int(ep["seed"]) == 3 + i and ep["actions"].shape == (150, 3)


def test_corrupt_shard_names_the_file(shards_w1, tmp_path):
    out, _ = shards_w1
    data = (out / "episode_000000.npz").read_bytes()
    bad = tmp_path / "episode_000000.npz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptShardError, match=str(bad)):
        load_episode(bad)


# --------------------------------------------------------------------- failures


@pytest.mark.parametrize("workers", [1, 2])
def test_episode_error_surfaces_in_parent(tmp_path, workers):
    start = time.monotonic()
    with pytest.raises(CollectError, match=r"episode \d+ \(env seed \d+\).*boom from the fake env"):
        collect(tmp_path, _cfg(episodes=4, workers=workers, envs_per_worker=2), env_name=f"{__name__}:raising_env",
                progress=False)
    assert time.monotonic() - start < 60
    assert list_episodes(tmp_path) == {}


def test_worker_crash_surfaces_in_parent(tmp_path):
    with pytest.raises(CollectError, match=r"failed on every try.*exit code 7"):
        collect(tmp_path, _cfg(episodes=4, workers=2), env_name=f"{__name__}:exiting_env", progress=False)


def test_folder_in_use_is_refused(tmp_path):
    import fcntl

    tmp_path.mkdir(exist_ok=True)
    with open(tmp_path / ".collect.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        with pytest.raises(CollectError, match="another collection"):
            collect(tmp_path, _cfg(episodes=1), progress=False)


def test_a_truncated_shard_is_collected_again_and_said(tmp_path, capsys):
    collect(tmp_path, _cfg(episodes=2, max_steps=10), progress=False)
    path = tmp_path / "episode_000001.npz"
    good = load_episode(path)
    path.write_bytes(path.read_bytes()[:-40])
    stats = collect(tmp_path, _cfg(episodes=2, max_steps=10), progress=False)
    assert stats["recollected_broken"] == 1 and stats["collected_now"] == 1 and stats["skipped_existing"] == 1
    assert "episode_000001.npz is unusable" in capsys.readouterr().out
    for key, value in load_episode(path).items():
        np.testing.assert_array_equal(value, good[key])


def test_collecting_in_this_process_gives_torchs_and_blas_threads_back(tmp_path):
    """An inline worker runs torch and numpy's BLAS on one thread each while it steps envs; the stages
    after it (V's training) get the process's thread counts back."""
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    from wm_fast.rollout.pool import WorkerCore, WorkerSpec

    def blas_threads() -> list[int]:
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with threadpool_limits(limits=2, user_api="blas"):
            core = WorkerCore(WorkerSpec("carracing", "gymnasium", max_steps=5))
            assert torch.get_num_threads() == 1 and set(blas_threads()) <= {1}
            core.close()
            assert torch.get_num_threads() == 2 and set(blas_threads()) <= {2}
            collect(tmp_path, _cfg(episodes=1, max_steps=5, workers=1), progress=False)
            assert torch.get_num_threads() == 2 and set(blas_threads()) <= {2}
    finally:
        torch.set_num_threads(before)


def test_an_inline_worker_that_fails_to_start_gives_the_threads_back(tmp_path):
    """A worker whose actor cannot be built (here: M's checkpoint is missing) raises, and leaves the process
    with the torch and BLAS thread counts it had."""
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    from wm_fast.errors import CheckpointError
    from wm_fast.rollout.pool import WorkerCore, WorkerSpec

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with threadpool_limits(limits=2, user_api="blas"):
            with pytest.raises(CheckpointError, match="does not exist"):
                WorkerCore(WorkerSpec("carracing", "gymnasium", max_steps=5, rnn_path=str(tmp_path / "missing.pt")))
            assert torch.get_num_threads() == 2
            assert {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"} <= {2}
    finally:
        torch.set_num_threads(before)
