"""Dataclass configs for every stage, and the presets `tiny`, `quick`, `headline` and `paper`.

One code path serves all three presets; only the numbers differ. Every field carries a
one-line docstring (tyro shows it as the CLI help).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from .envs import check, check_backend, spec
from .errors import ConfigError

PRESET_NAMES = ("tiny", "quick", "headline", "paper")


def default_workers() -> int:
    """Number of worker processes by default: the usable cores."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class CollectConfig:
    """Random-policy data collection in the real environment."""

    episodes: int = 10_000
    """Number of episodes (shards) to collect."""
    max_steps: int = 1000
    """Steps per episode at most (the environment's own limit is 1000 for CarRacing)."""
    policy: Literal["brownian", "iid", "held", "drive"] = "brownian"
    """Random policy: `iid` uniform, `brownian` smoothed random walk, `held` actions held 1-10 steps,
    `drive` (CarRacing) steering around straight ahead with gas held on (rollout/policies.py)."""
    workers: int = field(default_factory=default_workers)
    """Worker processes (default: the usable cores)."""
    envs_per_worker: int = 8
    """Env slots each worker steps as one batch (speed only: an episode depends on its seed alone)."""
    seed: int = 0
    """Episode i uses env seed `seed + i`."""


@dataclass
class VAEConfig:
    """ConvVAE (V) and its training."""

    z_dim: int = 32
    """Latent size."""
    epochs: int = 10
    """Passes over the frames."""
    batch_size: int = 100
    """Frames per batch."""
    lr: float = 1e-4
    """Adam learning rate."""
    kl_tolerance: float = 0.5
    """Free bits per latent dimension: KL term is max(KL, kl_tolerance * z_dim). 0 disables."""
    shuffle_shards: int = 16
    """Episodes held in the shuffle buffer at once (bounds memory)."""
    frame_stride: int = 1
    """Use every n-th frame of each episode for training (1 = all)."""
    seed: int = 0
    """Seed for initialisation and shuffling."""


@dataclass
class RNNConfig:
    """MDN-RNN (M) and its training."""

    hidden: int = 256
    """LSTM hidden size."""
    n_gaussians: int = 5
    """Mixture components K."""
    layout: Literal["shared", "per_dim"] = "per_dim"
    """Mixture weights: one set of K shared by all z dims (ctallec) or K per dim (original)."""
    seq_len: int = 999
    """Training sequence length (chunks of episodes)."""
    batch_size: int = 100
    """Sequences per batch."""
    epochs: int = 40
    """Passes over the encoded episodes (sequence chunks)."""
    lr: float = 1e-3
    """Adam learning rate."""
    grad_clip: float = 1.0
    """Gradient-norm clip."""
    reward_weight: float = 1.0
    """Weight of the reward MSE in the loss."""
    reward_smoothing: int = 1
    """M's reward target: the mean of the next k rewards (1: the reward itself). CarRacing's tile rewards fall
    on single frames M can hardly place; their k-frame mean keeps the episode's sum (sequences.smooth_rewards)."""
    done_weight: float = 1.0
    """Weight of the done BCE in the loss."""
    done_pos_weight: float = 10.0
    """Positive-class weight of the done BCE (ends are rare); <= 0: balanced (non-ends / ends in the data)."""
    mean_mse_weight: float = 0.0
    """Weight of an auxiliary MSE of the mixture mean: keeps the MDN from hedging between modes (0: off)."""
    holdout: float = 0.0
    """Fraction of episodes (every k-th) kept out of M's training, to report M's quality on (0: none,
    quality then measured on the training episodes)."""
    dropout: float = 0.0
    """Variational dropout rate for training M: one mask per sequence on z and h_{t-1}, never on actions."""
    length_buckets: int = 0
    """Batch windows of like length (0: off): each epoch's shuffled windows are cut into pools of this many
    batches, each pool sorted by window length and cut into batches, the batches shuffled. The same windows,
    less padding where episodes are shorter than seq_len (sequences.py); each real step keeps the same weight."""
    seed: int = 0
    """Seed for initialisation, chunking and latent sampling."""


@dataclass
class ControllerConfig:
    """Controller (C) trained by CMA-ES in the dream."""

    popsize: int = 64
    """CMA-ES population size."""
    rollouts: int = 16
    """Dream rollouts per candidate (fitness = mean return)."""
    sigma0: float = 0.1
    """Initial CMA-ES step size."""
    init_from: Optional[str] = None
    """A controller.pt (path) whose params are CMA-ES's starting mean in train-controller's dream stage,
    e.g. a C trained in another M's dream (default: zeros). Its size must match this run's C."""
    generations: int = 300
    """CMA-ES generations."""
    dream_steps: int = 1000
    """Steps per dream rollout at most."""
    temperature: float = 1.0
    """Dream temperature tau: logits/tau and sigma*sqrt(tau)."""
    done_threshold: float = 0.5
    """A dream ends when sigmoid(done logit) exceeds this."""
    l2_penalty: float = 0.01
    """Fitness penalty weight * mean(params^2) (the original's small L2 term)."""
    eval_every: int = 25
    """Every N generations, evaluate the CMA mean on `eval_rollouts` dream rollouts."""
    eval_rollouts: int = 1024
    """Rollouts for the periodic evaluation of the CMA mean."""
    backend: Literal["auto", "torch", "cpp", "cuda"] = "auto"
    """Dream backend: compiled engine or the pure-PyTorch reference."""
    common_random_numbers: bool = False
    """Every candidate of a generation dreams with the same noise for rollout r (ranked on equal draws)."""
    dream_dropout: float = 0.0
    """Dropout dreams: rate of M's z and h masks in the dream, one pair per rollout (0: off)."""
    dream_models: list[str] = field(default_factory=list)
    """Other Ms (rnn.pt paths, trained on this run's V) that dream beside the run's own M: each candidate's
    `rollouts` (and `eval_rollouts`) are split evenly among the K Ms, so a C is scored on the dreams of all
    of them (a model ensemble: an error of one M is worth less). The run's own dream stage and its sweeps."""
    restarts: int = 1
    """Independent CMA-ES runs (seeds seed, seed+1, ...) in controller/restart_k; the final C is the
    restart whose controller scores best on `eval_rollouts` fresh dreams, the same for all (chosen in
    the dream, never in the real env)."""
    seed: int = 0
    """Seed of CMA-ES and of the dreams."""


@dataclass
class EvalConfig:
    """Evaluation of C (with V and M) in the real environment."""

    episodes: int = 100
    """Real episodes."""
    seed_start: int = 10_000
    """Episode i uses env seed `seed_start + i` (keep clear of collection seeds)."""
    max_steps: int = 1000
    """Steps per episode at most."""
    video: bool = True
    """Write a GIF of the first episode."""
    workers: int = field(default_factory=default_workers)
    """Worker processes for the episodes."""
    envs_per_worker: int = 8
    """Env slots each worker steps as one batch (V, M and C batched over them; speed only)."""
    env_backend: Optional[Literal["gymnasium", "envpool"]] = None
    """Evaluate on this env backend (default: the run's `env_backend`); named in evaluate.json."""


@dataclass
class RealConfig:
    """CMA-ES on C in the real environment (`train-controller --mode real|dream-then-real`)."""

    popsize: int = 64
    """CMA-ES population size."""
    rollouts: int = 16
    """Real episodes per candidate (fitness = mean return)."""
    generations: int = 1800
    """Generations of `--mode real` (CMA-ES from zeros; the paper ran ~1800)."""
    sigma0: float = 0.1
    """Initial CMA-ES step size of `--mode real`."""
    finetune_generations: int = 100
    """Generations of the real phase of `--mode dream-then-real` (starts at the dream solution)."""
    finetune_sigma0: float = 0.05
    """Initial step size of the real phase of `--mode dream-then-real` (smaller: it starts near a solution)."""
    max_steps: int = 1000
    """Steps per real episode at most."""
    l2_penalty: float = 0.01
    """Fitness penalty weight * mean(params^2), as in the dream."""
    eval_every: int = 25
    """Every N generations, evaluate the CMA mean on `eval_rollouts` real episodes."""
    eval_rollouts: int = 1024
    """Real episodes for the periodic evaluation of the CMA mean (the paper used 1024)."""
    workers: int = field(default_factory=default_workers)
    """Workers running episodes: local processes, or Ray actors (the local Ray cluster gets this many CPUs)."""
    envs_per_worker: int = 8
    """Env slots each worker steps as one batch (speed only: an episode depends on its seed alone)."""
    backend: Literal["local", "ray"] = "local"
    """Where episodes run: `local` worker processes or `ray` actors."""
    address: Optional[str] = None
    """Ray only: address of an existing cluster (e.g. "auto" or "host:6379"); None starts a local one."""
    rollout_timeout_s: float = 600.0
    """An episode running longer than this is presumed hung: its worker is killed and the episode re-run elsewhere."""
    max_attempts: int = 3
    """Tries per episode (worker death, hang or error) before it is dropped from the candidate's mean."""
    run_mode: Literal["off", "real", "dream-then-real"] = "off"
    """Real-environment CMA-ES that `wm-fast run` does after the dream stage (`train-controller --mode`);
    `evaluate` then scores its controller. off: none."""
    env_backend: Optional[Literal["gymnasium", "envpool"]] = None
    """Env backend of these CMA-ES episodes (default: the run's). Named in the stage record: e.g. C tuned on
    EnvPool's fast CarRacing with a V trained on gymnasium frames, then scored on gymnasium."""
    patience: int = 0
    """> 0: a CMA-ES episode ends after this many steps in a row without a positive reward (CarRacing: off
    the track), scored by what it earned so far (see real.py for what that changes in the fitness). 0: never."""
    common_random_numbers: bool = False
    """All candidates of a generation play the same env seeds (its rollouts' tracks), so their
    ranking is not decided by which tracks they drew."""
    seed: int = 0
    """Seed of CMA-ES and of the episodes' env seeds."""


@dataclass
class IterateConfig:
    """Iterative refinement (`wm-fast iterate`): collect with C, retrain M (and V), retrain C in the dream."""

    start: Literal["dream", "dream-real", "real"] = "dream"
    """Controller round 1 collects with: the dream one, the dream-then-real one, or the real one."""
    episodes: int = 1000
    """New real episodes collected per round with the current controller."""
    noise: float = 0.1
    """Std of the Gaussian exploration noise added to C's actions while collecting (then clipped)."""
    retrain_vae: bool = False
    """Also retrain V each round (and re-encode every episode); off: V stays, new episodes are encoded."""
    vae_epochs: int = 1
    """Extra epochs of V per round when `retrain_vae`."""
    rnn_epochs: int = 20
    """Extra epochs of M per round, on old + new episodes (continues from the previous M)."""
    generations: int = 100
    """Dream CMA-ES generations per round (continues from the previous controller)."""
    eval_episodes: int = 100
    """Real episodes scoring each round's controller (seeds as `evaluate.seed_start`)."""
    spread_noise: bool = False
    """Episode j of n gets exploration noise * j / (n - 1) (from none to `noise`), not `noise` for all."""
    param_noise: float = 0.0
    """Episode j also perturbs C's parameters by s_j * rms(C) * N(0, I), s_j spread over [0, param_noise]
    in shuffled order: varied controllers visit varied states (0: off)."""
    run_rounds: int = 0
    """Rounds `wm-fast run` does before `evaluate` (which then scores the last round's controller)."""
    controller_from: Literal["current", "zeros"] = "current"
    """Where each round's dream CMA-ES starts: the current C, or zeros (a C trained only in the dream,
    on data its predecessor collected)."""
    eval_seed_start: Optional[int] = None
    """Env seed of each round's first scoring episode (None: `evaluate.seed_start`). Keep it apart from
    `evaluate.seed_start` when `pick` is best, so that the final score is on seeds no choice used."""
    pick: Literal["last", "best"] = "last"
    """The round whose C the `iterate` controller names (what `evaluate` scores after rounds): the last,
    or the best on its own scoring episodes."""


@dataclass
class PipelineConfig:
    """All stages of one run."""

    env: str = "carracing"
    """Environment name."""
    env_backend: Literal["gymnasium", "envpool"] = "gymnasium"
    """Implementation of the environment for every stage: gymnasium (the reference) or EnvPool's C++
    one (the `envpool` extra; other tracks and frames for the same seed). A run never mixes them."""
    preset: str = "paper"
    """Preset the numbers came from."""
    collect: CollectConfig = field(default_factory=CollectConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    rnn: RNNConfig = field(default_factory=RNNConfig)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    evaluate: EvalConfig = field(default_factory=EvalConfig)
    real: RealConfig = field(default_factory=RealConfig)
    iterate: IterateConfig = field(default_factory=IterateConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _paper() -> PipelineConfig:
    return PipelineConfig(preset="paper", rnn=RNNConfig(holdout=0.05))


def _quick() -> PipelineConfig:
    # 26 minutes on the slower CPU kind we have had (Intel Xeon, 2 cores: results/carracing_quick_intel_xeon.md):
    # collection, V and M, C in the dream, then C by CMA-ES on EnvPool's CarRacing (the envpool extra, see README).
    return PipelineConfig(
        preset="quick",
        collect=CollectConfig(episodes=80, max_steps=500),
        vae=VAEConfig(epochs=3, batch_size=64, lr=1e-3, shuffle_shards=8, frame_stride=2),
        rnn=RNNConfig(seq_len=100, batch_size=32, epochs=60, holdout=0.1),
        controller=ControllerConfig(
            popsize=32, rollouts=8, generations=60, dream_steps=500, eval_every=10,
            eval_rollouts=256,
        ),
        evaluate=EvalConfig(episodes=20, max_steps=1000),
        # After the dream, C is trained by CMA-ES on real episodes of EnvPool's fast CarRacing (V
        # trained on gymnasium frames), hopeless episodes stopped after 100 steps without a new
        # tile; 9-14 minutes on 2 cores. `evaluate` scores it on gymnasium's CarRacing.
        real=RealConfig(
            popsize=16, rollouts=1, generations=40, finetune_generations=4, max_steps=1000, eval_every=20,
            eval_rollouts=16, run_mode="real", env_backend="envpool", patience=100,
        ),
        iterate=IterateConfig(episodes=16, rnn_epochs=20, generations=20, eval_episodes=20),
    )


def _headline() -> PipelineConfig:
    # The headline CarRacing result on 2 cores (results/carracing_headline.md): the quick preset's
    # data, M and dream C, with V trained 4 epochs (the quick preset's until its 30-minute trim; the
    # committed chain's V), then a long real CMA-ES on EnvPool whose candidates share each
    # generation's track. Hours: run it in steps with `--stop-after-minutes` (each resumes where the
    # last stopped).
    cfg = _quick()
    cfg.preset = "headline"
    cfg.vae = dataclasses.replace(cfg.vae, epochs=4)
    cfg.real = dataclasses.replace(cfg.real, generations=500, eval_every=20, eval_rollouts=32,
                                   common_random_numbers=True)
    return cfg


def _tiny() -> PipelineConfig:
    return PipelineConfig(
        preset="tiny",
        collect=CollectConfig(episodes=4, max_steps=40, workers=2, envs_per_worker=2),
        vae=VAEConfig(epochs=1, batch_size=16, lr=1e-3, shuffle_shards=2),
        rnn=RNNConfig(hidden=32, n_gaussians=3, seq_len=16, batch_size=4, epochs=2),
        controller=ControllerConfig(
            popsize=6, rollouts=2, generations=2, dream_steps=20, eval_every=1,
            eval_rollouts=8,
        ),
        evaluate=EvalConfig(episodes=2, max_steps=30, workers=2, envs_per_worker=2),
        real=RealConfig(
            popsize=4, rollouts=2, generations=2, finetune_generations=2, max_steps=30, eval_every=1,
            eval_rollouts=2, workers=2, envs_per_worker=2, rollout_timeout_s=120.0,
        ),
        iterate=IterateConfig(episodes=2, rnn_epochs=1, generations=2, eval_episodes=2),
    )


def _cartpole_quick() -> PipelineConfig:
    # World Models on CartPole-v1's state (z = the normalized 4-dim state, no V): random play, then
    # rounds of the controller's own episodes with exploration (results/cartpole_pipeline.md).
    return PipelineConfig(
        env="cartpole", preset="quick",
        collect=CollectConfig(episodes=300, max_steps=500, policy="iid", workers=1, envs_per_worker=16),
        rnn=RNNConfig(hidden=64, seq_len=64, batch_size=64, epochs=300, lr=5e-3, reward_weight=0.0,
                      done_pos_weight=0.0, mean_mse_weight=1000.0),
        controller=ControllerConfig(popsize=32, rollouts=16, generations=40, dream_steps=500, eval_every=10,
                                    eval_rollouts=256, common_random_numbers=True),
        evaluate=EvalConfig(episodes=100, seed_start=2_000_000, max_steps=500, video=False, workers=1,
                            envs_per_worker=16),
        real=RealConfig(popsize=16, rollouts=4, generations=20, finetune_generations=10, max_steps=500,
                        eval_every=10, eval_rollouts=100, workers=1, envs_per_worker=16),
        iterate=IterateConfig(episodes=30, noise=0.3, spread_noise=True, param_noise=0.5, rnn_epochs=80,
                              generations=20, eval_episodes=20, run_rounds=5),
    )


def _cartpole_tiny() -> PipelineConfig:
    return PipelineConfig(
        env="cartpole", preset="tiny",
        collect=CollectConfig(episodes=8, max_steps=500, policy="iid", workers=1, envs_per_worker=8),
        rnn=RNNConfig(hidden=8, n_gaussians=2, seq_len=16, batch_size=8, epochs=2, lr=5e-3, reward_weight=0.0,
                      done_pos_weight=0.0, mean_mse_weight=1000.0),
        controller=ControllerConfig(popsize=4, rollouts=2, generations=2, dream_steps=50, eval_every=1,
                                    eval_rollouts=4, common_random_numbers=True),
        evaluate=EvalConfig(episodes=3, seed_start=2_000_000, max_steps=500, video=False, workers=1,
                            envs_per_worker=4),
        real=RealConfig(popsize=4, rollouts=2, generations=2, finetune_generations=2, max_steps=100, eval_every=1,
                        eval_rollouts=2, workers=1, envs_per_worker=4, rollout_timeout_s=120.0),
        iterate=IterateConfig(episodes=4, noise=0.3, spread_noise=True, param_noise=0.5, rnn_epochs=1,
                              generations=1, eval_episodes=2, run_rounds=1),
    )


_DOOM_WORKERS = {"workers": 2, "envs_per_worker": 4}
"""Two worker processes of 4 games each: on 2 cores they collect 1.31x and play with V, M and C 1.9x as
fast as one process of 8 games (results/doom_workers.md, benchmarks/doom_workers.py). Episodes do not
depend on the layout."""


def _doom_paper() -> PipelineConfig:
    # The paper's DoomTakeCover (../shared/PAPER.md): 10,000 random rollouts with actions held 1-10
    # frames, z 64, LSTM 512, done weighted 10, C on [z, c, h] trained only in the dream at tau 1.15.
    return PipelineConfig(
        env="doom", preset="paper",
        collect=CollectConfig(episodes=10_000, max_steps=2100, policy="held", **_DOOM_WORKERS),
        vae=VAEConfig(z_dim=64),
        rnn=RNNConfig(hidden=512, seq_len=500, done_pos_weight=10.0, holdout=0.05),
        controller=ControllerConfig(popsize=64, rollouts=16, generations=200, dream_steps=2100,
                                    temperature=1.15),
        evaluate=EvalConfig(episodes=100, seed_start=1_000_000, max_steps=2100, **_DOOM_WORKERS),
        real=RealConfig(max_steps=2100, **_DOOM_WORKERS),
        iterate=IterateConfig(episodes=1000, rnn_epochs=20, generations=100, eval_episodes=100),
    )


def _doom_quick() -> PipelineConfig:
    # The whole Doom pipeline in under 30 minutes on 2 cores (results/doom_quick.md). Every C is trained
    # only in M's dream, from zeros; M's data: 300 random episodes, then 2 iterate rounds of 150 episodes
    # of the previous C (random moves mixed in, from none to half), M continued on all of them. The C
    # scored is the round's best on its own 32 scoring episodes (seeds 3,000,000..), then scored on
    # episodes from seed 1,000,000 that no stage used. (Random data alone gives a dream that C beats at
    # every temperature: real 222-274 against the random policy's 351, results/doom_temperature.md.)
    return PipelineConfig(
        env="doom", preset="quick",
        collect=CollectConfig(episodes=300, max_steps=2100, policy="held", **_DOOM_WORKERS),
        vae=VAEConfig(z_dim=64, epochs=2, batch_size=64, lr=1e-3, shuffle_shards=16, frame_stride=2),
        rnn=RNNConfig(hidden=256, seq_len=100, batch_size=32, epochs=30, done_pos_weight=10.0, holdout=0.1),
        controller=ControllerConfig(popsize=32, rollouts=8, generations=40, dream_steps=2100, temperature=1.15,
                                    eval_every=10, eval_rollouts=256),
        evaluate=EvalConfig(episodes=50, seed_start=1_000_000, max_steps=2100, **_DOOM_WORKERS),
        real=RealConfig(popsize=16, rollouts=4, generations=20, finetune_generations=4, max_steps=2100,
                        eval_every=10, eval_rollouts=16, **_DOOM_WORKERS),
        iterate=IterateConfig(episodes=150, noise=0.5, spread_noise=True, rnn_epochs=10, generations=40,
                              eval_episodes=32, controller_from="zeros", run_rounds=2, pick="best",
                              eval_seed_start=3_000_000),
    )


def _doom_headline() -> PipelineConfig:
    # The Doom headline on 2 cores (results/doom_headline.md): the quick preset's data, V, M, dream C and
    # rounds 1-2 (the same settings, so a quick run continues into it), then rounds 3-5; the round best
    # on its own 32 scoring episodes is scored on 100 episodes (env seeds 1,000,000..) no stage used.
    cfg = _doom_quick()
    cfg.preset = "headline"
    cfg.iterate = dataclasses.replace(cfg.iterate, run_rounds=5)
    cfg.evaluate = dataclasses.replace(cfg.evaluate, episodes=100)
    return cfg


def _doom_tiny() -> PipelineConfig:
    cfg = _tiny()
    cfg.env = "doom"
    cfg.vae.z_dim = 8
    cfg.collect.policy = "held"
    for section in (cfg.collect, cfg.evaluate, cfg.real):
        section.workers = 1
    cfg.evaluate.seed_start = 1_000_000
    return cfg


_PRESETS = {"tiny": _tiny, "quick": _quick, "headline": _headline, "paper": _paper}
_ENV_PRESETS: dict[str, dict[str, Any]] = {
    "cartpole": {"tiny": _cartpole_tiny, "quick": _cartpole_quick},
    "doom": {"tiny": _doom_tiny, "quick": _doom_quick, "headline": _doom_headline, "paper": _doom_paper},
}
"""Presets of environments whose numbers differ from CarRacing's (the default presets)."""


def get_preset(name: str, env: str = "carracing") -> PipelineConfig:
    """The config for preset `name` on environment `env`.

    Raises:
        ConfigError: the preset or the environment is unknown.
    """
    check(env)
    presets = _ENV_PRESETS.get(env, _PRESETS)
    if name not in presets:
        raise ConfigError(f"unknown preset {name!r} for {env}; choose one of {', '.join(presets)}")
    cfg = presets[name]()
    cfg.env = env
    validate(cfg)
    return cfg


def validate(cfg: PipelineConfig) -> None:
    """Raise ConfigError naming the first invalid field."""
    check_backend(cfg.env, cfg.env_backend)
    if ":" not in cfg.env and spec(cfg.env).observation == "state" and cfg.iterate.retrain_vae:
        raise ConfigError(f"iterate.retrain_vae: {cfg.env} has state observations and no V to retrain")
    for backend in (cfg.evaluate.env_backend, cfg.real.env_backend):
        if backend is not None:
            check_backend(cfg.env, backend)
    positive = {
        "collect.episodes": cfg.collect.episodes,
        "collect.max_steps": cfg.collect.max_steps,
        "collect.workers": cfg.collect.workers,
        "collect.envs_per_worker": cfg.collect.envs_per_worker,
        "evaluate.envs_per_worker": cfg.evaluate.envs_per_worker,
        "real.envs_per_worker": cfg.real.envs_per_worker,
        "vae.z_dim": cfg.vae.z_dim,
        "vae.epochs": cfg.vae.epochs,
        "vae.batch_size": cfg.vae.batch_size,
        "vae.shuffle_shards": cfg.vae.shuffle_shards,
        "vae.frame_stride": cfg.vae.frame_stride,
        "rnn.hidden": cfg.rnn.hidden,
        "rnn.n_gaussians": cfg.rnn.n_gaussians,
        "rnn.seq_len": cfg.rnn.seq_len,
        "rnn.batch_size": cfg.rnn.batch_size,
        "rnn.epochs": cfg.rnn.epochs,
        "rnn.reward_smoothing": cfg.rnn.reward_smoothing,
        "controller.popsize": cfg.controller.popsize,
        "controller.rollouts": cfg.controller.rollouts,
        "controller.generations": cfg.controller.generations,
        "controller.dream_steps": cfg.controller.dream_steps,
        "controller.eval_every": cfg.controller.eval_every,
        "controller.eval_rollouts": cfg.controller.eval_rollouts,
        "controller.restarts": cfg.controller.restarts,
        "evaluate.episodes": cfg.evaluate.episodes,
        "evaluate.max_steps": cfg.evaluate.max_steps,
        "evaluate.workers": cfg.evaluate.workers,
        "real.popsize": cfg.real.popsize,
        "real.rollouts": cfg.real.rollouts,
        "real.generations": cfg.real.generations,
        "real.finetune_generations": cfg.real.finetune_generations,
        "real.max_steps": cfg.real.max_steps,
        "real.eval_every": cfg.real.eval_every,
        "real.eval_rollouts": cfg.real.eval_rollouts,
        "real.workers": cfg.real.workers,
        "real.max_attempts": cfg.real.max_attempts,
        "iterate.episodes": cfg.iterate.episodes,
        "iterate.rnn_epochs": cfg.iterate.rnn_epochs,
        "iterate.generations": cfg.iterate.generations,
        "iterate.eval_episodes": cfg.iterate.eval_episodes,
    }
    for name, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{name} must be positive, got {value}")
    for name, value in {
        "vae.lr": cfg.vae.lr,
        "rnn.lr": cfg.rnn.lr,
        "controller.sigma0": cfg.controller.sigma0,
        "controller.temperature": cfg.controller.temperature,
        "real.sigma0": cfg.real.sigma0,
        "real.finetune_sigma0": cfg.real.finetune_sigma0,
        "real.rollout_timeout_s": cfg.real.rollout_timeout_s,
    }.items():
        if not value > 0:
            raise ConfigError(f"{name} must be positive, got {value}")
    if cfg.controller.popsize < 2:
        raise ConfigError(f"controller.popsize must be at least 2, got {cfg.controller.popsize}")
    if not 0.0 < cfg.controller.done_threshold < 1.0:
        raise ConfigError(
            f"controller.done_threshold must be in (0, 1), got {cfg.controller.done_threshold}"
        )
    if cfg.collect.policy not in ("brownian", "iid", "held", "drive"):
        raise ConfigError(f"collect.policy must be brownian, iid, held or drive, got {cfg.collect.policy!r}")
    if cfg.rnn.layout not in ("shared", "per_dim"):
        raise ConfigError(f"rnn.layout must be shared or per_dim, got {cfg.rnn.layout!r}")
    if cfg.controller.backend not in ("auto", "torch", "cpp", "cuda"):
        raise ConfigError(
            f"controller.backend must be auto, torch, cpp or cuda, got {cfg.controller.backend!r}"
        )
    if cfg.real.popsize < 2:
        raise ConfigError(f"real.popsize must be at least 2, got {cfg.real.popsize}")
    if cfg.real.backend not in ("local", "ray"):
        hint = " (the dream backend is controller.backend, --controller.backend)" if cfg.real.backend in (
            "auto", "torch", "cpp", "cuda") else ""
        raise ConfigError(f"real.backend must be local or ray, got {cfg.real.backend!r}{hint}")
    if cfg.real.address is not None and cfg.real.backend != "ray":
        raise ConfigError("real.address (--address) is for --backend ray only")
    if cfg.iterate.start not in ("dream", "dream-real", "real"):
        raise ConfigError(f"iterate.start must be dream, dream-real or real, got {cfg.iterate.start!r}")
    if cfg.iterate.pick not in ("last", "best"):
        raise ConfigError(f"iterate.pick must be last or best, got {cfg.iterate.pick!r}")
    if cfg.iterate.eval_seed_start is not None and cfg.iterate.eval_seed_start < 0:
        raise ConfigError(f"iterate.eval_seed_start must be non-negative, got {cfg.iterate.eval_seed_start}")
    if cfg.iterate.controller_from not in ("current", "zeros"):
        raise ConfigError(f"iterate.controller_from must be current or zeros, got {cfg.iterate.controller_from!r}")
    k = 1 + len(cfg.controller.dream_models)
    for name in ("rollouts", "eval_rollouts"):
        if getattr(cfg.controller, name) % k:
            raise ConfigError(f"controller.{name}={getattr(cfg.controller, name)} does not split evenly among the "
                              f"{k} Ms of controller.dream_models and the run's own")
    if cfg.controller.init_from is not None and not cfg.controller.init_from.strip():
        raise ConfigError("controller.init_from must name a controller.pt file, got an empty path")
    if cfg.real.run_mode not in ("off", "real", "dream-then-real"):
        raise ConfigError(f"real.run_mode must be off, real or dream-then-real, got {cfg.real.run_mode!r}")
    if cfg.real.patience < 0:
        raise ConfigError(f"real.patience must be non-negative, got {cfg.real.patience}")
    if not 0.0 <= cfg.rnn.holdout < 1.0:
        raise ConfigError(f"rnn.holdout must be in [0, 1), got {cfg.rnn.holdout}")
    for name, value in (("rnn.dropout", cfg.rnn.dropout), ("controller.dream_dropout", cfg.controller.dream_dropout)):
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"{name} must be in [0, 1), got {value}")
    for name, value in (("iterate.noise", cfg.iterate.noise), ("iterate.param_noise", cfg.iterate.param_noise),
                        ("iterate.run_rounds", cfg.iterate.run_rounds), ("rnn.mean_mse_weight", cfg.rnn.mean_mse_weight),
                        ("rnn.length_buckets", cfg.rnn.length_buckets)):
        if not value >= 0:
            raise ConfigError(f"{name} must be non-negative, got {value}")
    if cfg.iterate.retrain_vae and cfg.iterate.vae_epochs <= 0:
        raise ConfigError(f"iterate.vae_epochs must be positive, got {cfg.iterate.vae_epochs}")
