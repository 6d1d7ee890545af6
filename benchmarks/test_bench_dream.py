"""pytest-benchmark suite for the dream (outside the default test run):

    .venv/bin/python -m pytest benchmarks/ --benchmark-only --benchmark-columns=min,mean,rounds

One benchmark per implementation x batch (1, 64, 1024) on paper sizes. Dream lengths:
WM_BENCH_STEPS (default 1000) for the engine, WM_BENCH_BASELINE_STEPS (default 100) for the
pure-PyTorch baselines; extra_info["steps_per_s"] holds the rate (batch x steps / min time).
Threads: WM_BENCH_THREADS (default 2). report.py writes the committed JSON; this suite is for
quick comparisons (e.g. --benchmark-compare).
"""

from __future__ import annotations

import os

import pytest
import torch

import common
from wm_fast.dream import DreamOptions, engine_backends

THREADS = int(os.environ.get("WM_BENCH_THREADS", "2"))
ENGINE_STEPS = int(os.environ.get("WM_BENCH_STEPS", "1000"))
BASELINE_STEPS = int(os.environ.get("WM_BENCH_BASELINE_STEPS", "100"))


@pytest.fixture(autouse=True)
def _threads():
    before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(before)


_steps_cache: dict[str, object] = {}


def _step(impl):
    if impl not in _steps_cache:
        _steps_cache[impl] = common.make_step(impl)
    return _steps_cache[impl]


@pytest.mark.parametrize("batch", [1, 64, 1024])
@pytest.mark.parametrize("impl", common.IMPLS)
def test_dream_throughput(benchmark, impl, batch):
    world = common.make_world(batch)
    if impl.startswith("engine"):
        backend = "cpp" if impl == "engine_cpu" else "cuda"
        if backend not in engine_backends():
            pytest.skip(f"{backend} engine not available")
        steps = ENGINE_STEPS
        opts = DreamOptions(steps=steps, rollouts=world.rollouts, seed=1)
        common.run_engine(world, DreamOptions(steps=5, rollouts=world.rollouts), backend)
        fn = lambda: common.run_engine(world, opts, backend)  # noqa: E731
    else:
        steps = BASELINE_STEPS
        step = _step(impl)
        opts = DreamOptions(steps=steps, rollouts=world.rollouts, seed=1)
        common.run_loop(step, world, DreamOptions(steps=3, rollouts=world.rollouts))  # compile / warm-up
        fn = lambda: common.run_loop(step, world, opts)  # noqa: E731
    benchmark.pedantic(fn, rounds=3, iterations=1)
    benchmark.extra_info["steps"] = steps
    benchmark.extra_info["steps_per_s"] = batch * steps / benchmark.stats.stats.min


def test_baseline_step_is_the_reference():
    for impl in ("torch_eager", "torchscript"):
        common.check_step_matches_reference(impl)


def test_baseline_step_is_the_reference_at_doom_sizes():
    """Small Doom-like worlds ([z, c, h] controller, threshold mapping, alive or model reward)."""
    for impl in ("torch_eager", "torchscript"):
        common.check_doom_step_matches_reference(impl)


def test_doom_paper_world_runs_the_baseline():
    """The Doom paper world: 64 + 512 + 512 controller inputs, one output; never ends, +1 per step."""
    world = common.make_world(1, sizes=common.DOOM)
    assert world.params.shape == (1, 1089) and world.model.hidden == 512 and world.model.action_dim == 1
    returns, lengths = common.run_loop(common.make_step("torch_eager"), world, world.options(3))
    assert returns.tolist() == [[3.0]] and lengths.tolist() == [[3]]
    with pytest.raises(ValueError, match="world.options"):  # CarRacing options on a Doom world
        common.run_loop(common.make_step("torch_eager"), world, DreamOptions(steps=3, rollouts=1))
