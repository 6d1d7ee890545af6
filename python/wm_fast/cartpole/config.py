"""CartPole world-model settings: `CartPoleConfig`, presets `tiny` and `quick`, file names, seed ranges."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from ..config import ConfigError
from ..envs.cartpole import MAX_STEPS

CONFIG_FILE = "cartpole.json"
SUMMARY_FILE = "summary.json"
RNN_FILE = "rnn.pt"
CONTROLLER_FILE = "controller.pt"
LOGVAR = -20.0
"""logvar stored with each state: exp(-10) ~ 4.5e-5 of noise when the trainer samples z."""
ACTION_MAPPING = "argmax"
CONTROLLER_INPUT = "zh"
REWARD_SOURCE = "alive"
TRAIN_SEED_LIMIT = 1_000_000
"""Every env seed a pipeline trains on or scores rounds on is below this; evaluate above it."""


@dataclass
class CartPoleConfig:
    """State-based World Models on CartPole-v1 (`wm-fast cartpole`)."""

    preset: str = "quick"
    """Preset the numbers came from (tiny, quick)."""
    model: Literal["mdn", "lstm"] = "mdn"
    """M: the MDN-RNN, or a deterministic LSTM (MSE on the next state)."""
    hidden: int = 64
    """LSTM hidden size H (C reads [z, h]: (4 + H) * 2 + 2 parameters)."""
    n_gaussians: int = 5
    """Mixture components K of the MDN (the deterministic LSTM uses 1)."""
    layout: Literal["shared", "per_dim"] = "per_dim"
    """Mixture weights: one set of K shared by all dims, or K per dim."""
    random_episodes: int = 300
    """Random-policy episodes collected in round 0."""
    rounds: int = 5
    """Iterative rounds after round 0 (0: random data only)."""
    round_episodes: int = 30
    """Episodes collected with the current C (+ exploration) before each later round."""
    explore: float = 0.3
    """Round episode i takes a random action with probability eps_i, evenly spread over [0, explore]."""
    explore_params: float = 0.5
    """Round episode i also perturbs C's parameters by sigma_i * rms(C) * N(0, I), sigma_i evenly spread
    over [0, explore_params] (in shuffled order against eps_i): varied controllers, varied states."""
    seq_len: int = 64
    """M's training windows (steps); every episode's first window starts at its first step."""
    end_windows: bool = True
    """Every episode's last window ends at its last step, where the done label is (False: random, as
    `SequenceSampler` draws them, which almost never reaches the end of a long episode)."""
    burn_in: int = 8
    """Windows starting mid-episode (M's zero state there is not what M would hold) score no loss on
    their first `burn_in` steps; windows at an episode's start score every step, as dreams start there."""
    batch_size: int = 64
    """Windows per batch."""
    rnn_steps: int = 1500
    """Gradient steps of M in round 0."""
    rnn_round_steps: int = 800
    """Gradient steps of M in each later round (continuing the previous M, on all data)."""
    lr: float = 5e-3
    """Adam learning rate of M."""
    grad_clip: float = 1.0
    """Gradient-norm clip of M."""
    mse_weight: float = 100.0
    """Deterministic LSTM: weight of the next-state MSE (normalized units) in its loss."""
    skip: float = 0.1
    """> 0: LSTM units 0..3 of M hold a fixed copy of z (input weight `skip`, see `skip_init`), so M
    learns only the change z_{t+1} - z_t; 0: a plain M."""
    det_sigma: float = 1e-4
    """Deterministic LSTM: the sigma its head is frozen to (normalized units) for the dream engine."""
    mirror: bool = False
    """Also train M on every episode mirrored (state -> -state, left <-> right): CartPole's symmetry."""
    done_pos_weight: float = 0.0
    """Positive-class weight of the done BCE; 0 = balanced (negatives / positives in the data)."""
    done_weight: float = 1.0
    """Weight of the done BCE in M's loss."""
    mean_mse_weight: float = 1000.0
    """MDN: weight of an auxiliary MSE of the mixture mean (normalized units) added to the NLL."""
    popsize: int = 32
    """CMA-ES population."""
    rollouts: int = 16
    """Dream rollouts per candidate."""
    sigma0: float = 0.1
    """Initial CMA-ES step size."""
    generations: int = 40
    """CMA-ES generations in round 0."""
    round_generations: int = 20
    """CMA-ES generations in each later round (starting at the previous C)."""
    temperature: float = 1.0
    """Dream temperature tau (MDN only; the deterministic LSTM has sigma ~ 0 either way)."""
    done_threshold: float = 0.5
    """A dream ends when sigmoid(done logit) exceeds this."""
    dream_steps: int = MAX_STEPS
    """Dream horizon of CMA-ES (CartPole-v1 truncates at 500; longer asks C to stay stable, not just survive 500)."""
    l2_penalty: float = 0.01
    """CMA-ES fitness penalty weight * mean(params^2)."""
    eval_every: int = 10
    """Evaluate the CMA mean every N generations on `eval_rollouts` dreams (the best is kept)."""
    eval_rollouts: int = 256
    """Dream rollouts of those evaluations."""
    common_random_numbers: bool = True
    """All candidates of a generation dream with the same noise per rollout."""
    dream_score_rollouts: int = 1000
    """Dreams scoring the final C (the table's dream score, a seed not used in training)."""
    round_eval_episodes: int = 20
    """Real episodes scoring each round's C (logged only)."""
    eval_episodes: int = 100
    """Real episodes scoring the final C."""
    eval_seed_start: int = 2_000_000
    """Episode i of the final scoring uses env seed eval_seed_start + i (unseen in training)."""
    backend: Literal["auto", "torch", "cpp", "cuda"] = "auto"
    """Dream engine."""
    threads: int = 1
    """torch threads while the pipeline runs (its tensors are small: one thread is fastest, measured 2.4x on 2 cores)."""
    seed: int = 0
    """Seed of everything (env seeds of collection, M, CMA-ES, dreams)."""

    def check(self) -> None:
        for name in ("hidden", "n_gaussians", "random_episodes", "round_episodes", "seq_len", "batch_size",
                     "rnn_steps", "popsize", "rollouts", "generations", "dream_steps", "eval_every",
                     "eval_rollouts", "dream_score_rollouts", "round_eval_episodes", "eval_episodes", "threads"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("rounds", "rnn_round_steps", "round_generations", "done_pos_weight", "l2_penalty",
                     "burn_in", "skip", "done_weight", "mean_mse_weight", "explore_params"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be non-negative, got {getattr(self, name)}")
        for name in ("lr", "grad_clip", "mse_weight", "det_sigma", "sigma0", "temperature"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.model not in ("mdn", "lstm"):
            raise ConfigError(f"model must be mdn or lstm, got {self.model!r}")
        if self.layout not in ("shared", "per_dim"):
            raise ConfigError(f"layout must be shared or per_dim, got {self.layout!r}")
        if not 0.0 <= self.explore <= 1.0:
            raise ConfigError(f"explore must be in [0, 1], got {self.explore}")
        if not 0.0 < self.done_threshold < 1.0:
            raise ConfigError(f"done_threshold must be in (0, 1), got {self.done_threshold}")
        if self.popsize < 2:
            raise ConfigError(f"popsize must be at least 2, got {self.popsize}")
        if self.eval_seed_start < TRAIN_SEED_LIMIT:
            raise ConfigError(f"eval_seed_start must be >= {TRAIN_SEED_LIMIT} (seeds below are for training)")
        if self.random_episodes + self.rounds * self.round_episodes > 100_000:
            raise ConfigError("at most 100,000 episodes (seed ranges)")


def tiny_config(**overrides: Any) -> CartPoleConfig:
    """Seconds: a smoke test of every step, not a result."""
    cfg = CartPoleConfig(
        preset="tiny", hidden=8, n_gaussians=2, random_episodes=8, rounds=1, round_episodes=4, seq_len=16,
        batch_size=8, rnn_steps=10, rnn_round_steps=5, popsize=4, rollouts=2, generations=2,
        round_generations=1, dream_steps=50, eval_every=1, eval_rollouts=4, dream_score_rollouts=8,
        round_eval_episodes=2, eval_episodes=3,
    )
    return dataclasses.replace(cfg, **overrides)


PRESETS = {"tiny": tiny_config, "quick": lambda **kw: dataclasses.replace(CartPoleConfig(), **kw)}


def get_config(preset: str = "quick", settings: tuple[str, ...] | list[str] = (), **overrides: Any) -> CartPoleConfig:
    """The config of `preset` ("tiny" or "quick") with `overrides` (None values ignored) and then
    `settings`, strings "field=value" for any CartPoleConfig field (e.g. "end_windows=false")."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown CartPole preset {preset!r}; choose one of {', '.join(PRESETS)}")
    cfg = PRESETS[preset](**{k: v for k, v in overrides.items() if v is not None})
    cfg = dataclasses.replace(cfg, **parse_settings(settings))
    cfg.check()
    return cfg


def parse_settings(settings: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """{"field": value} from "field=value" strings, each value parsed as the field's type."""
    defaults = CartPoleConfig()
    out: dict[str, Any] = {}
    for item in settings:
        name, eq, text = item.partition("=")
        name = name.strip().replace("-", "_")
        if not eq or not hasattr(defaults, name) or name == "preset":
            raise ConfigError(f"--set expects field=value with a CartPoleConfig field, got {item!r}")
        kind = type(getattr(defaults, name))
        try:
            if kind is bool:
                if text.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(text)
                out[name] = text.lower() in ("true", "1")
            else:
                out[name] = kind(text)
        except ValueError as e:
            raise ConfigError(f"--set {item!r}: {text!r} is not a valid {kind.__name__}") from e
    return out
