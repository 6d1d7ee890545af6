"""Kill and resume at several points ends bit-identical to an uninterrupted run: CMA-ES at
quick-like sizes (in-process and `wm-fast train-controller` under kill -9), train-vae and train-rnn
(kill -9 right after, or right before, a checkpoint)."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from wm_fast import es as es_module
from wm_fast.config import ControllerConfig
from wm_fast.es import train_controller
from wm_fast.storage import load_checkpoint, save_checkpoint

WALL_CLOCK = ("wall_s", "elapsed_s", "steps_per_s", "worker_rss_mb")

# ---------------------------------------------------------------- CMA-ES in-process

# C of the quick preset: (z 32 + LSTM 256) * 3 + 3; cma switches to TPA step-size control at n >= 300
N_QUICK = 867


class NoisyQuadratic:
    """A cheap deterministic es.Evaluator: a fixed weighted quadratic plus noise that depends on the seed only."""

    name = "noisy-quadratic"

    def __init__(self, n: int = N_QUICK):
        rng = np.random.default_rng(12345)
        self.target = rng.normal(0.0, 0.3, n)
        self.weight = rng.uniform(0.5, 2.0, n)
        self.calls = 0

    def __call__(self, params: np.ndarray, seed: int, rollouts: int) -> np.ndarray:
        self.calls += 1
        noise = np.random.default_rng(seed).normal(0.0, 0.5, (len(params), rollouts)).mean(1)
        return -(self.weight * (params.astype(np.float64) - self.target) ** 2).sum(1) + noise


class Killed(Exception):
    """Stands for a kill: the call stops at once, the process state is lost, the files stay."""


QUICK_LIKE = ControllerConfig(popsize=32, rollouts=8, sigma0=0.1, generations=14, eval_every=5,
                              eval_rollouts=16, l2_penalty=0.0, seed=0)


def _strip(entries: list[dict]) -> list[dict]:
    return [{k: v for k, v in e.items() if k not in WALL_CLOCK} for e in entries]


def _cma_of(folder: Path):
    state = load_checkpoint(folder / es_module.STATE_FILE)
    return es_module._unpickle_es(state["es_pickle"].numpy().tobytes()), state


def _assert_same_controller_run(a: Path, b: Path, generations: int) -> None:
    la = _strip([json.loads(line) for line in (a / "log.jsonl").read_text().splitlines()])
    lb = _strip([json.loads(line) for line in (b / "log.jsonl").read_text().splitlines()])
    assert len(la) == len(lb) == generations
    for x, y in zip(la, lb):
        assert x == y, f"log diverges at generation {x['generation']}: {x} != {y}"
    (cma_a, sa), (cma_b, sb) = _cma_of(a), _cma_of(b)
    np.testing.assert_array_equal(cma_b.mean, cma_a.mean)
    assert cma_b.sigma == cma_a.sigma and cma_b.countiter == cma_a.countiter
    assert _strip(sb["evals"]) == _strip(sa["evals"]) and sb["best_eval"] == sa["best_eval"]
    assert sb["best_return"] == sa["best_return"]
    torch.testing.assert_close(sb["best_params"], sa["best_params"], rtol=0, atol=0)
    ca = torch.load(a / "controller.pt", weights_only=True)
    cb = torch.load(b / "controller.pt", weights_only=True)
    torch.testing.assert_close(cb["params"], ca["params"], rtol=0, atol=0)
    torch.testing.assert_close(cb["mean_params"], ca["mean_params"], rtol=0, atol=0)
    assert cb["eval_return"] == ca["eval_return"]


def test_cma_resumed_at_several_points_is_bit_identical_at_quick_sizes(tmp_path):
    cfg = QUICK_LIKE
    train_controller(NoisyQuadratic(), N_QUICK, tmp_path / "straight", cfg, progress=False)

    def kill_after(generation: int):
        def on_generation(g: int) -> None:
            if g == generation:  # es_state.pt of this generation is on disk
                raise Killed
        return on_generation

    class KillOnCall(NoisyQuadratic):
        """Dies inside its k-th call: mid-generation, or mid-evaluation of the mean."""

        def __init__(self, k: int):
            super().__init__()
            self.k = k

        def __call__(self, params, seed, rollouts):
            if self.calls + 1 == self.k:
                raise Killed
            return super().__call__(params, seed, rollouts)

    resumed = tmp_path / "resumed"
    kills = [
        kill_after(3),
        kill_after(7),
        KillOnCall(2),  # resumed at 7: dies inside generation 9
        KillOnCall(3),  # resumed at 8: dies inside the evaluation of the mean at generation 10
        kill_after(10),  # resumed at 9: dies right after evaluation generation 10 is saved
    ]
    for kill in kills:
        np.random.seed(987)  # a fresh process starts with another global numpy RNG state
        evaluator = kill if isinstance(kill, NoisyQuadratic) else NoisyQuadratic()
        with pytest.raises(Killed):
            train_controller(evaluator, N_QUICK, resumed, cfg, progress=False,
                             on_generation=None if isinstance(kill, NoisyQuadratic) else kill)
    assert es_module.generations_done(resumed) == 10
    np.random.seed(4321)
    evaluator = NoisyQuadratic()
    train_controller(evaluator, N_QUICK, resumed, cfg, progress=False)
    assert evaluator.calls == 4 + 1  # generations 11-14 and the final evaluation
    _assert_same_controller_run(tmp_path / "straight", resumed, cfg.generations)


def test_a_state_saved_before_the_fix_resumes_bit_identical(tmp_path):
    """es_state.pt of older versions holds a plain pickle (es.pickle_dumps()), with a private copy
    of numpy's global RandomState in it; loading binds the sampler to the global one again."""
    cfg = dataclasses.replace(QUICK_LIKE, generations=8)
    train_controller(NoisyQuadratic(), N_QUICK, tmp_path / "straight", cfg, progress=False)

    def stop_at_4(g: int) -> None:
        if g == 4:
            raise Killed

    old = tmp_path / "old"
    with pytest.raises(Killed):
        train_controller(NoisyQuadratic(), N_QUICK, old, cfg, progress=False, on_generation=stop_at_4)
    state = load_checkpoint(old / es_module.STATE_FILE)
    cma = es_module._unpickle_es(state["es_pickle"].numpy().tobytes())
    es_module._set_np_rng_state(state["np_rng"])
    state["es_pickle"] = torch.frombuffer(bytearray(cma.pickle_dumps()), dtype=torch.uint8)  # as saved before
    save_checkpoint(old / es_module.STATE_FILE, state)

    np.random.seed(55)
    train_controller(NoisyQuadratic(), N_QUICK, old, cfg, progress=False)
    _assert_same_controller_run(tmp_path / "straight", old, cfg.generations)


def test_the_reloaded_sampler_draws_from_numpy_global_rng():
    np.random.seed(0)
    cma = es_module._new_es(N_QUICK, QUICK_LIKE, None)
    for data in (es_module._pickle_es(cma), cma.pickle_dumps()):
        again = es_module._unpickle_es(data)
        assert again.sm.randn.__self__ is np.random.randn.__self__
        assert again.opts["randn"].__self__ is np.random.randn.__self__
    assert pickle.loads(cma.pickle_dumps()).sm.randn.__self__ is not np.random.randn.__self__  # the trap


# ---------------------------------------------------------------- wm-fast train-controller, kill -9


def _wm_fast_env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_AUTH_MODE": "disabled", "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def _controller_run(tiny_run_dir: Path, dst: Path) -> Path:
    """The tiny run without its controller, M widened to hidden 72 with fixed random weights: C has
    (32 + 72) * 3 + 3 = 315 parameters, over cma's TPA threshold of 300 like the quick preset's 867."""
    from wm_fast.mdnrnn import MDNRNN

    run = dst
    shutil.copytree(tiny_run_dir, run)  # as test_real.copy_run(..., keep_controller=False)
    shutil.rmtree(run / "controller")
    (run / "train-controller.json").unlink()
    rnn = run / "rnn" / "rnn.pt"
    arch = {k: load_checkpoint(rnn)[k] for k in ("z_dim", "action_dim", "n_gaussians", "layout")}
    arch["hidden"] = 72
    torch.manual_seed(0)
    save_checkpoint(rnn, {"model": MDNRNN(**arch).state_dict(), **arch})
    return run


def _log_lines(path: Path) -> int:
    try:
        return len(path.read_text().splitlines())
    except FileNotFoundError:
        return 0


DREAM_ARGS = ("--controller.generations", "24", "--controller.popsize", "16", "--controller.rollouts", "2",
              "--controller.eval-every", "8", "--controller.eval-rollouts", "8")
REAL_ARGS = ("--mode", "real", "--real.generations", "9", "--real.popsize", "6", "--real.rollouts", "1",
             "--real.eval-every", "4", "--real.eval-rollouts", "2", "--real.max-steps", "25", "--real.workers", "2")


@pytest.mark.slow
@pytest.mark.parametrize("mode,extra,folder,generations,kill_points", [
    ("dream", DREAM_ARGS, "controller", 24, (4, 9, 16)),  # the third lands right after evaluation 16, or in 17
    ("real", REAL_ARGS, "controller_real", 9, (2, 5)),
])
def test_train_controller_killed_at_several_points_ends_bit_identical(tiny_run_dir, tmp_path, mode, extra, folder,
                                                                     generations, kill_points):
    args = ("-m", "wm_fast", "train-controller", "--run-dir", "D", *extra, "--quiet")
    straight = _controller_run(tiny_run_dir, tmp_path / "straight" / "D")
    done = subprocess.run([sys.executable, *args], cwd=straight.parent, env=_wm_fast_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr

    killed = _controller_run(tiny_run_dir, tmp_path / "killed" / "D")
    log = killed / folder / "log.jsonl"
    at_kill = []
    for kill_at in kill_points:
        proc = subprocess.Popen([sys.executable, *args], cwd=killed.parent, env=_wm_fast_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while _log_lines(log) < kill_at:
                assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()}"
                assert time.monotonic() < deadline, "no progress in 120 s"
                time.sleep(0.01)
            os.killpg(proc.pid, signal.SIGKILL)  # the command and its episode workers
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        assert proc.returncode == -signal.SIGKILL
        at_kill.append(es_module.generations_done(killed / folder))
    assert at_kill[0] >= kill_points[0] and at_kill == sorted(set(at_kill)) and at_kill[-1] < generations, at_kill
    rerun = subprocess.run([sys.executable, *args], cwd=killed.parent, env=_wm_fast_env(),
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr

    a, b = straight / folder, killed / folder
    assert torch.load(a / "controller.pt", weights_only=True)["params"].numel() == 315
    _assert_same_controller_run(a, b, generations)  # params, mean_params, log lines, CMA mean and sigma


# ---------------------------------------------------------------- train-vae and train-rnn, kill -9

# Runs wm_fast.<module>.<function>(files, out, cfg, progress=False, **kwargs) and SIGKILLs itself
# right after (when="after") or right before (when="before": the epoch in flight is lost) the k-th
# checkpoint it writes.
KILL_CHILD = textwrap.dedent(
    """
    import importlib, json, os, signal, sys
    from pathlib import Path
    import torch
    torch.set_num_threads(1)
    import wm_fast.config
    spec = json.loads(sys.argv[1])
    mod = importlib.import_module(spec["module"])
    cfg = getattr(wm_fast.config, spec["cfg_class"])(**spec["cfg"])
    real_save, count = mod.save_checkpoint, 0

    def save_checkpoint(*args, **kwargs):
        global count
        count += 1
        if spec["when"] == "before" and count == spec["k"]:
            os.kill(os.getpid(), signal.SIGKILL)
        real_save(*args, **kwargs)
        if spec["when"] == "after" and count == spec["k"]:
            os.kill(os.getpid(), signal.SIGKILL)

    mod.save_checkpoint = save_checkpoint
    getattr(mod, spec["function"])([Path(f) for f in spec["files"]], Path(spec["out"]), cfg,
                                   progress=False, **spec["kwargs"])
    sys.exit(3)  # not killed
    """
)


def _run_and_kill(module: str, function: str, files: list[Path], out: Path, cfg, when: str, k: int,
                  **kwargs) -> None:
    spec = {"module": module, "function": function, "files": [str(f) for f in files], "out": str(out),
            "cfg_class": type(cfg).__name__, "cfg": dataclasses.asdict(cfg), "when": when, "k": k,
            "kwargs": kwargs}
    proc = subprocess.run([sys.executable, "-c", KILL_CHILD, json.dumps(spec)], env=_wm_fast_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def _assert_same_checkpoint(a: Path, b: Path) -> None:
    sa, sb = load_checkpoint(a), load_checkpoint(b)
    assert sa["epoch"] == sb["epoch"]
    assert sa["model"].keys() == sb["model"].keys()
    for k in sa["model"]:
        assert torch.equal(sa["model"][k], sb["model"][k]), k
    oa, ob = sa["optimizer"]["state"], sb["optimizer"]["state"]
    assert oa.keys() == ob.keys()
    for i in oa:
        for k in oa[i]:
            assert torch.equal(torch.as_tensor(oa[i][k]), torch.as_tensor(ob[i][k])), (i, k)
    assert torch.equal(sa["torch_rng"], sb["torch_rng"])
    timing = ("seconds", "frames_per_s", "sequences_per_s", "wall_s")
    assert _strip_keys(sa["history"], timing) == _strip_keys(sb["history"], timing)


def _strip_keys(rows: list[dict], keys: tuple[str, ...]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in keys} for r in rows]


def _episodes(folder: Path, lengths: list[int]) -> list[Path]:
    """Episode shards of smooth, learnable frames (solid colour halves)."""
    from wm_fast.shards import episode_name, save_episode

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    files = []
    for i, t in enumerate(lengths):
        frames = np.empty((t + 1, 64, 64, 3), dtype=np.uint8)
        frames[:, :32] = rng.integers(0, 256, (t + 1, 1, 1, 3))
        frames[:, 32:] = rng.integers(0, 256, (t + 1, 1, 1, 3))
        files.append(folder / episode_name(i))
        save_episode(files[-1], frames, rng.uniform(-1, 1, (t, 3)), rng.standard_normal(t), i % 2 == 0,
                     i % 2 == 1, 100 + i)
    return files


def _latents(folder: Path, lengths: list[int], z: int = 2, a: int = 3) -> list[Path]:
    from wm_fast.shards import episode_name, save_latents

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    files = []
    for i, t in enumerate(lengths):
        dones = np.zeros(t, np.float32)
        dones[-1] = 1.0
        files.append(folder / episode_name(i))
        save_latents(files[-1], rng.normal(size=(t + 1, z)), np.full((t + 1, z), -2.0), rng.uniform(-1, 1, (t, a)),
                     rng.normal(size=t), dones, seed=i)
    return files


def test_train_vae_killed_twice_ends_bit_identical(tmp_path):
    from wm_fast.config import VAEConfig
    from wm_fast.train_vae import train_vae

    files = _episodes(tmp_path / "ep", [15] * 4)
    cfg = VAEConfig(z_dim=8, epochs=4, batch_size=16, lr=1e-3, shuffle_shards=2, seed=0)
    straight = train_vae(files, tmp_path / "straight", cfg, progress=False)
    out = tmp_path / "killed"
    _run_and_kill("wm_fast.train_vae", "train_vae", files, out, cfg, "after", 1)  # right after epoch 1
    assert load_checkpoint(out / "vae.pt")["epoch"] == 1
    _run_and_kill("wm_fast.train_vae", "train_vae", files, out, cfg, "before", 2)  # epoch 3 lost
    assert load_checkpoint(out / "vae.pt")["epoch"] == 2
    resumed = train_vae(files, out, cfg, progress=False)
    assert resumed["resumed_from_epoch"] == 2 and resumed["loss"] == straight["loss"]
    _assert_same_checkpoint(tmp_path / "straight" / "vae.pt", out / "vae.pt")


def test_train_rnn_killed_twice_ends_bit_identical(tmp_path):
    from wm_fast.config import RNNConfig
    from wm_fast.train_rnn import train_rnn

    files = _latents(tmp_path / "latents", [12, 5, 20])
    cfg = RNNConfig(hidden=8, n_gaussians=2, layout="shared", seq_len=8, batch_size=3, epochs=4, lr=1e-3, seed=0)
    straight = train_rnn(files, tmp_path / "straight", cfg, action_dim=3, progress=False, device="cpu")
    out = tmp_path / "killed"
    kw = dict(action_dim=3, device="cpu")
    _run_and_kill("wm_fast.train_rnn", "train_rnn", files, out, cfg, "before", 2, **kw)  # epoch 2 lost
    assert load_checkpoint(out / "rnn.pt")["epoch"] == 1
    _run_and_kill("wm_fast.train_rnn", "train_rnn", files, out, cfg, "after", 2, **kw)  # right after epoch 3
    assert load_checkpoint(out / "rnn.pt")["epoch"] == 3
    resumed = train_rnn(files, out, cfg, progress=False, **kw)
    assert resumed["loss"] == straight["loss"]
    _assert_same_checkpoint(tmp_path / "straight" / "rnn.pt", out / "rnn.pt")
