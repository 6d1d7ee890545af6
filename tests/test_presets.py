"""Every preset of every environment is a valid config, invalid options are refused with an
error that names the field, and valid but starving settings (Doom workers) are warned about."""

import dataclasses

import pytest

from wm_fast.config import PRESET_NAMES, ConfigError, get_preset, validate
from wm_fast.config import _ENV_PRESETS  # noqa: PLC2701 (the per-env preset table)

ALL = [("carracing", name) for name in PRESET_NAMES] + [
    (env, name) for env, presets in _ENV_PRESETS.items() for name in presets]


@pytest.mark.parametrize("env,name", ALL)
def test_every_preset_is_valid_and_names_itself(env, name):
    cfg = get_preset(name, env)
    validate(cfg)
    assert cfg.preset == name and cfg.env == env


def test_headline_continues_its_committed_chain_and_shares_quicks_data_and_m():
    """The headline preset is the committed chain's config (results/carracing_headline/config.json),
    so `scripts/carracing_headline.sh step` continues it rather than training V again; it differs
    from quick in V's epochs and the real CMA-ES only."""
    from pathlib import Path

    from wm_fast.pipeline import load_config

    quick, headline = get_preset("quick"), get_preset("headline")
    chain = load_config(Path(__file__).parents[1] / "results/carracing_headline/config.json")
    for section in ("collect", "vae", "rnn", "controller", "evaluate", "real"):
        ours, theirs = dataclasses.asdict(getattr(headline, section)), dataclasses.asdict(getattr(chain, section))
        for speed_only in ("workers", "envs_per_worker"):  # not part of a stage's result
            ours.pop(speed_only, None), theirs.pop(speed_only, None)
        assert ours == theirs, section
    for section in ("collect", "rnn", "controller", "evaluate"):
        assert getattr(quick, section) == getattr(headline, section), section
    assert dataclasses.replace(headline.vae, epochs=quick.vae.epochs) == quick.vae
    assert headline.real.generations > quick.real.generations
    assert headline.real.common_random_numbers and headline.real.run_mode == "real"


def test_doom_headline_continues_a_quick_run_and_chooses_rounds_on_seeds_of_their_own():
    """Doom's headline preset is its quick preset with more iterate rounds and more scoring episodes (a quick
    run continues into it), every C trained only in the dream, and the seeds that choose a round, the seeds
    iterate collects on and the final scoring seeds are apart."""
    import dataclasses

    from wm_fast.iterate import ROUND_STRIDE, SEED_OFFSET

    quick, headline = get_preset("quick", "doom"), get_preset("headline", "doom")
    for section in ("collect", "vae", "rnn", "controller", "real"):
        assert getattr(quick, section) == getattr(headline, section), section
    assert dataclasses.replace(headline.iterate, run_rounds=quick.iterate.run_rounds) == quick.iterate
    assert headline.iterate.run_rounds > quick.iterate.run_rounds and headline.evaluate.episodes == 100
    for cfg in (quick, headline):
        it = cfg.iterate
        assert it.controller_from == "zeros" and it.pick == "best" and cfg.real.run_mode == "off"
        collected = range(SEED_OFFSET + ROUND_STRIDE, SEED_OFFSET + (it.run_rounds + 1) * ROUND_STRIDE)
        choosing = range(it.eval_seed_start, it.eval_seed_start + it.eval_episodes)
        scoring = range(cfg.evaluate.seed_start, cfg.evaluate.seed_start + cfg.evaluate.episodes)
        for a, b in ((collected, choosing), (collected, scoring), (choosing, scoring)):
            assert not set(a) & set(b)
        assert cfg.evaluate.seed_start >= cfg.collect.episodes


@pytest.mark.parametrize("section,field,value,message", [
    ("collect", "episodes", 0, "collect.episodes must be positive"),
    ("vae", "lr", float("nan"), "vae.lr must be positive"),
    ("rnn", "holdout", 1.0, r"rnn.holdout must be in \[0, 1\)"),
    ("controller", "done_threshold", 1.5, r"controller.done_threshold must be in \(0, 1\)"),
    ("controller", "temperature", 0.0, "controller.temperature must be positive"),
    ("controller", "restarts", 0, "controller.restarts must be positive"),
    ("rnn", "reward_smoothing", 0, "rnn.reward_smoothing must be positive"),
    ("real", "popsize", 1, "real.popsize must be at least 2"),
    ("real", "patience", -1, "real.patience must be non-negative"),
    ("real", "run_mode", "dreamy", "real.run_mode must be off, real or dream-then-real"),
    ("real", "backend", "cuda", "the dream backend is controller.backend"),
    ("iterate", "noise", -0.1, "iterate.noise must be non-negative"),
])
def test_an_invalid_field_is_refused_by_name(section, field, value, message):
    cfg = get_preset("quick")
    cfg = dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), **{field: value})})
    with pytest.raises(ConfigError, match=message):
        validate(cfg)


def test_state_envs_refuse_options_that_need_frames():
    cfg = get_preset("quick", "cartpole")
    cfg.iterate = dataclasses.replace(cfg.iterate, retrain_vae=True)
    with pytest.raises(ConfigError, match="state observations and no V"):
        validate(cfg)
