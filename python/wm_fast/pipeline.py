"""The stages wired together over one run directory, as a Python API.

    import wm_fast
    run = wm_fast.Run("runs/demo", wm_fast.get_preset("quick"))
    run.collect(); run.train_vae(); run.encode(); run.train_rnn()
    run.train_controller(); print(run.evaluate()["mean"])

Layout of a run directory D (each stage reads the previous stages' files, writes its own):
    D/config.json               the PipelineConfig of the run
    D/episodes/episode_*.npz    collect
    D/vae/vae.pt, reconstruction.png                  train-vae
    D/latents/episode_*.npz     encode
    D/rnn/rnn.pt                train-rnn
    D/controller/es_state.pt, controller.pt, log.jsonl, curve.png   train-controller
    D/evaluate.json, D/evaluate.gif                    evaluate
    D/<stage>.json              metrics + config of each finished stage

Beyond the pipeline (each with its stage record D/<stage>.json):
    D/controller_real/...       train-controller --mode real (CMA-ES in the real env from zeros)
    D/controller_dream_real/... train-controller --mode dream-then-real (real CMA-ES from D/controller's solution)
    D/evaluate-<name>.json      evaluate --controller real|dream-real|iterate
    D/iterate/round_NNN/...     iterate (see iterate.py); D/iterate.json has one row per round
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from . import iterate as iterate_module
from .config import ConfigError, ControllerConfig, PipelineConfig, get_preset, validate
from .envs import facts
from .provenance import git_commit, machine_description
from .records import config_diff, refuse_changed, with_new_fields
from .shards import list_episodes
from .storage import MissingStageError, WmFastError, atomic_write_json, dumps_json, read_json

if TYPE_CHECKING:
    from .config import EvalConfig
    from .es import DreamEvaluator

IDENTITY_V = "state observations: V is the identity (z is the env's normalized state), nothing to train or encode"
STAGES = ("collect", "train-vae", "encode", "train-rnn", "train-controller", "evaluate")

# Which part of the config each stage depends on (a change there makes a stage stale).
_STAGE_SECTIONS = {
    "collect": ("collect",),
    "train-vae": ("collect", "vae"),
    "encode": ("collect", "vae"),
    "train-rnn": ("collect", "vae", "rnn"),
    "train-controller": ("collect", "vae", "rnn", "controller"),
    "evaluate": ("collect", "vae", "rnn", "controller", "real", "iterate", "evaluate"),
    "evaluate-dream": ("collect", "vae", "rnn", "controller", "evaluate"),
    "train-controller-real": ("collect", "vae", "rnn", "real"),
    "train-controller-dream-real": ("collect", "vae", "rnn", "controller", "real"),
    "evaluate-real": ("collect", "vae", "rnn", "real", "evaluate"),
    "evaluate-dream-real": ("collect", "vae", "rnn", "controller", "real", "evaluate"),
    "evaluate-iterate": ("collect", "vae", "rnn", "controller", "real", "iterate", "evaluate"),
    "evaluate-iterate-best": ("collect", "vae", "rnn", "controller", "real", "iterate", "evaluate"),
}
# Settings that change where or how fast work runs, not its results.
_NOT_RESULTS = ("workers", "envs_per_worker", "backend", "address", "rollout_timeout_s", "max_attempts")

MODES = ("dream", "real", "dream-then-real")
"""`train-controller --mode`: CMA-ES in M's dream, in the real env, or dream then a real fine-tune."""
CONTROLLERS = ("latest", "dream", "real", "dream-real", "iterate", "iterate-best")
"""Trained controllers a run can hold (see `Run.controller_file`)."""


def _stage_config(cfg: PipelineConfig, stage: str) -> dict[str, Any]:
    d = cfg.to_dict()
    out = {"env": d["env"]}
    if d["env_backend"] != "gymnasium":  # runs made before backends existed ran on gymnasium
        out["env_backend"] = d["env_backend"]
    for section in _STAGE_SECTIONS[stage]:
        section_dict = dict(d[section])
        for key in _NOT_RESULTS if section in ("real", "collect", "evaluate") else ():
            section_dict.pop(key, None)  # parallelism does not change results
        out[section] = section_dict
    return out


def _recorded_config(record: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """The stage config `record` was made with, with the fields added since (those in `now`) at their defaults."""
    return with_new_fields(record.get("config", {}), now, PipelineConfig().to_dict())


class Run:
    """One run directory and the stages that fill it (see module docstring).

    Args:
        run_dir: the folder; created if missing.
        cfg: the config; when None, the run's saved config.json (or the `quick` preset).
        progress: show progress bars.
        save_config: write cfg as the run's config.json (False for one-off overrides of one stage).
        log: where stages print one-line notices (e.g. the projected wall time of a real run).
        deadline: `time.monotonic()` after which CMA-ES stages stop cleanly at the end of a
            generation, raising TimeBudgetReached (their state saved; run again to continue).
    """

    def __init__(self, run_dir: Path | str, cfg: PipelineConfig | None = None, progress: bool = True,
                 save_config: bool = True, log: Callable[[str], None] = print, deadline: float | None = None):
        self.dir = Path(run_dir)
        self.deadline = deadline
        if self.dir.exists() and not self.dir.is_dir():
            raise ConfigError(f"the run directory {self.dir} is an existing file, not a folder; "
                              "name a new or existing folder with --run-dir")
        saved = self.dir / "config.json"
        if cfg is None:
            cfg = load_config(saved) if saved.exists() else get_preset("quick")
        validate(cfg)
        self.cfg = cfg
        self.progress = progress
        self.log = log
        self.dir.mkdir(parents=True, exist_ok=True)
        if save_config or not saved.exists():
            for stage in _STAGE_SECTIONS:  # refuse (ConfigError) before overwriting a run made with another config
                self.is_complete(stage)
            atomic_write_json(saved, cfg.to_dict())

    # ---- paths
    @property
    def episodes_dir(self) -> Path:
        return self.dir / "episodes"

    @property
    def latents_dir(self) -> Path:
        return self.dir / "latents"

    @property
    def vae_path(self) -> Path:
        return self.dir / "vae" / "vae.pt"

    @property
    def has_frames(self) -> bool:
        """False for a state environment (CartPole): no V, its normalized state is z."""

        return facts(self.cfg.env).observation == "frames"

    @property
    def collect_dir(self) -> Path:
        """Where collect writes: episode shards (frames), or latent files straight away (states)."""
        return self.episodes_dir if self.has_frames else self.latents_dir

    def v_path(self, vae_path: Path | None = None) -> Path | None:
        """V's checkpoint for the agent: `vae_path` or the pipeline's; None for a state env."""
        return (vae_path or self.vae_path) if self.has_frames else None

    @property
    def rnn_path(self) -> Path:
        return self.dir / "rnn" / "rnn.pt"

    @property
    def controller_dir(self) -> Path:
        return self.dir / "controller"

    @property
    def controller_path(self) -> Path:
        return self.controller_dir / "controller.pt"

    def controller_file(self, name: str = "dream") -> Path:
        """controller.pt of controller `name` (see `controller_models`)."""
        return self.controller_models(name)["controller"]

    def controller_models(self, name: str = "latest") -> dict[str, Any]:
        """V, M and C of controller `name`: dream (D/controller), real (D/controller_real),
        dream-real (D/controller_dream_real), iterate (the C of the iterate round `iterate.pick` names —
        the last by default — with that round's M, and V), iterate-best (the round whose C scored best on
        its own scoring episodes), or latest (iterate when the run has iterate rounds, else dream).

        Returns {"name" (resolved), "vae" (None for a state env), "rnn", "controller"}.
        """
        if name == "latest":
            real = {"off": None, "real": "real", "dream-then-real": "dream-real"}[self.cfg.real.run_mode]
            name = ("iterate" if iterate_module.finished_rounds(self) else
                    real if real and self.controller_file(real).exists() else "dream")
        folders = {"dream": "controller", "real": "controller_real", "dream-real": "controller_dream_real"}
        if name in folders:
            models = {"vae": self.vae_path, "rnn": self.rnn_path,
                      "controller": self.dir / folders[name] / "controller.pt"}
        elif name in ("iterate", "iterate-best"):
            models = iterate_module.latest_models(self, "best" if name == "iterate-best" else None)
        else:
            raise ConfigError(f"unknown controller {name!r}; choose one of {', '.join(CONTROLLERS)}")
        return {"name": name, "vae": self.v_path(models["vae"]), "rnn": models["rnn"],
                "controller": models["controller"]}

    # ---- bookkeeping
    def stage_file(self, stage: str) -> Path:
        return self.dir / f"{stage}.json"

    def is_complete(self, stage: str) -> bool:
        """True when `stage` finished with this run's config; ConfigError if it finished with another."""
        path = self.stage_file(stage)
        if not path.exists():
            return False
        record = read_json(path)
        now = _stage_config(self.cfg, stage)
        recorded = _recorded_config(record, now)
        if stage.startswith("evaluate") and config_diff(recorded, now):
            return False  # evaluation settings changed: evaluate again, nothing downstream depends on it
        refuse_changed(recorded, now, f"stage {stage} in {self.dir}",
                       f"use a new --run-dir, or delete {path} to redo it")
        return bool(record.get("complete"))

    def _record(self, stage: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        start = time.perf_counter()
        metrics = fn()
        config = _stage_config(self.cfg, stage)
        is_evaluation = stage.startswith("evaluate")
        if not is_evaluation and self._rerun_did_nothing(stage, config, metrics):
            return metrics  # the record keeps the seconds, commit and machine of the call that did the work
        # evaluate*.json are both the stage record and the evaluation: their figures sit at the top.
        flat = metrics if is_evaluation else {}
        record = {
            **flat, "stage": stage, "complete": True, "metrics": metrics,
            "config": config, "env_backend": metrics.get("env_backend", self.cfg.env_backend),
            "seconds": time.perf_counter() - start,
            "commit": git_commit(), "machine": machine_description(),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        atomic_write_json(self.stage_file(stage), record)
        return metrics

    def _rerun_did_nothing(self, stage: str, config: dict[str, Any], metrics: dict[str, Any]) -> bool:
        """True when `stage` was already complete with this config and the call's metrics equal the record's
        (but for the per-call `seconds_this_call`): a rerun of a finished training stage did no work.
        A record written before a config field or metric existed counts as equal on what it holds."""
        path = self.stage_file(stage)
        if not path.exists():
            return False
        old = read_json(path)

        def as_written(d: dict[str, Any]) -> Any:  # as the record's JSON holds it, less the per-call field
            return json.loads(dumps_json({k: v for k, v in d.items() if k != "seconds_this_call"}))

        now_config, now_metrics = as_written(config), as_written(metrics)
        old_metrics = as_written(old.get("metrics", {}))
        return (old.get("complete") is True and _recorded_config(old, now_config) == now_config
                and old_metrics == {k: v for k, v in now_metrics.items() if k in old_metrics})

    def require(self, what: Path | dict, description: str, stage: str) -> None:
        """Raise MissingStageError unless `what` (a path, or a dict of found files) exists / is non-empty:
        `stage` needs `description`, which an earlier stage makes."""
        missing = (not what) if isinstance(what, dict) else (not what.exists())
        if missing:
            raise MissingStageError(f"{stage} needs {description}, which {self.dir} lacks; "
                                    f"run the earlier stages first (wm-fast run --run-dir {self.dir})")

    # ---- stages
    def collect(self) -> dict[str, Any]:
        """Random-policy episodes → D/episodes (resumable)."""
        from .rollout.collect import collect

        return self._record("collect", lambda: collect(self.collect_dir, self.cfg.collect, env_name=self.cfg.env,
                                                       env_backend=self.cfg.env_backend, progress=self.progress))

    def train_vae(self) -> dict[str, Any]:
        """Train V on the episodes' frames → D/vae (resumable per epoch)."""
        from .train_vae import train_vae

        if not self.has_frames:
            return self._record("train-vae", lambda: {"skipped": IDENTITY_V})
        files = list(list_episodes(self.episodes_dir).values())
        self.require(dict(enumerate(files)), f"episode shards in {self.episodes_dir}", "train-vae")
        return self._record("train-vae", lambda: train_vae(files, self.vae_path.parent, self.cfg.vae,
                                                           progress=self.progress))

    def encode(self) -> dict[str, Any]:
        """Encode every episode with V → D/latents (resumable per episode)."""
        from .encode import encode_episodes
        from .train_vae import load_vae

        if not self.has_frames:
            return self._record("encode", lambda: {"skipped": IDENTITY_V})
        self.require(self.vae_path, f"a trained V at {self.vae_path}", "encode")
        files = list(list_episodes(self.episodes_dir).values())
        vae = load_vae(self.vae_path)
        return self._record("encode", lambda: encode_episodes(files, vae, self.latents_dir,
                                                              progress=self.progress))

    def train_rnn(self) -> dict[str, Any]:
        """Train M on the latent sequences → D/rnn (resumable per epoch)."""
        from .train_rnn import train_rnn

        files = list(list_episodes(self.latents_dir).values())
        self.require(dict(enumerate(files)), f"latent files in {self.latents_dir}", "train-rnn")
        return self._record("train-rnn", lambda: train_rnn(files, self.rnn_path.parent, self.cfg.rnn,
                                                           action_dim=facts(self.cfg.env).action_dim,
                                                           progress=self.progress))

    def train_controller(self, mode: str = "dream") -> dict[str, Any]:
        """CMA-ES on C → D/controller (resumable per generation).

        mode "dream": inside M's dream → D/controller (the pipeline's stage).
        mode "real": in the real environment from zeros → D/controller_real.
        mode "dream-then-real": the dream stage (skipped when complete), then a real run of
        real.finetune_generations from its solution with step size real.finetune_sigma0 →
        D/controller_dream_real. Real runs print their projected wall time first.
        """
        if mode == "real":
            return self._record("train-controller-real", lambda: self._train_real(
                self.dir / "controller_real", None, self.cfg.real.generations, self.cfg.real.sigma0))
        if mode == "dream-then-real":
            if self.is_complete("train-controller"):
                self.log(f"[wm-fast] train-controller (dream): already complete in "
                         f"{self.stage_file('train-controller')}, starting the real phase from it")
            else:
                self.log("[wm-fast] train-controller (dream): running")
                self.train_controller("dream")
            from .es import load_controller

            x0 = load_controller(self.controller_path).double().numpy()
            return self._record("train-controller-dream-real", lambda: self._train_real(
                self.dir / "controller_dream_real", x0, self.cfg.real.finetune_generations,
                self.cfg.real.finetune_sigma0))
        if mode != "dream":
            raise ConfigError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        from .es import train_controller

        self.require(self.rnn_path, f"a trained M at {self.rnn_path}", "train-controller")
        evaluator = self.dream_evaluator(self.cfg.controller)
        x0 = self._initial_controller(evaluator.n_params)
        return self._record("train-controller", lambda: train_controller(
            evaluator, evaluator.n_params, self.controller_dir, self.cfg.controller, x0=x0, progress=self.progress,
            eval_start=x0 is not None, deadline=self.deadline))

    def _initial_controller(self, n_params: int) -> Any:
        """CMA-ES's starting mean (n_params,) float64 from controller.init_from, or None (zeros)."""
        path = self.cfg.controller.init_from
        if path is None:
            return None
        from .es import load_controller

        if not Path(path).is_file():
            raise ConfigError(f"controller.init_from: no controller file at {path}")
        params = load_controller(path)
        if params.numel() != n_params:
            raise ConfigError(f"controller.init_from: {path} holds {params.numel()} params, this run's C has "
                              f"{n_params} (another env, z size or M)")
        return params.double().numpy()

    def dream_evaluator(self, cfg: ControllerConfig, rnn_path: Path | None = None,
                        latents_dir: Path | None = None) -> "DreamEvaluator":
        """CMA-ES's evaluator in the dream of M at `rnn_path` (default the pipeline's) with settings `cfg`
        and this env's facts; dreams start from the first frames of the episodes in `latents_dir`
        (default the pipeline's latents). Without `rnn_path` and with cfg.dream_models, an
        EnsembleDreamEvaluator of the pipeline's M and those."""
        from .encode import initial_latents
        from .es import DreamEvaluator
        from .train_rnn import load_mdnrnn

        env = facts(self.cfg.env)
        init_mu, init_logvar = initial_latents(list(list_episodes(latents_dir or self.latents_dir).values()))

        def member(path: Path) -> DreamEvaluator:
            return DreamEvaluator(load_mdnrnn(path), init_mu, init_logvar, cfg, action_mapping=env.action_mapping,
                                  controller_input=env.controller_input, reward_source=env.reward_source,
                                  common_random_numbers=cfg.common_random_numbers)

        own = member(rnn_path or self.rnn_path)
        if rnn_path is not None or not cfg.dream_models:
            return own
        from .es import EnsembleDreamEvaluator

        members = [own]
        for path in cfg.dream_models:
            if not Path(path).is_file():
                raise ConfigError(f"controller.dream_models: no M at {path}")
            members.append(member(Path(path)))
            if members[-1].n_params != own.n_params:
                raise ConfigError(f"controller.dream_models: {path} gives a C of {members[-1].n_params} params, "
                                  f"this run's M one of {own.n_params} (another z size or LSTM)")
        return EnsembleDreamEvaluator(members)  # type: ignore[return-value]

    def controller_size(self, rnn_path: Path | None = None) -> int:
        """Number of C's parameters for this run's M and env (its controller input and action mapping)."""
        from .controller import n_params_for
        from .train_rnn import load_mdnrnn

        env = facts(self.cfg.env)
        return n_params_for(load_mdnrnn(rnn_path or self.rnn_path), env.controller_input,  # type: ignore[arg-type]
                            env.action_mapping)  # type: ignore[arg-type]

    def real_worker_spec(self, max_steps: int, vae_path: Path | None = None, rnn_path: Path | None = None,
                         envs_per_worker: int | None = None, env_backend: str | None = None):
        """The `rollout.pool.WorkerSpec` of this run's env (on `env_backend`, default the run's) with V and M
        (default: the pipeline's)."""
        from .rollout.pool import agent_spec

        return agent_spec(self.cfg.env, env_backend or self.cfg.env_backend, max_steps,
                          envs_per_worker or self.cfg.real.envs_per_worker, self.v_path(vae_path),
                          rnn_path or self.rnn_path)

    def real_evaluator(self, max_steps: int | None = None, vae_path: Path | None = None,
                       rnn_path: Path | None = None):
        """A `real.RealEvaluator` with this run's V, M and `real` settings (close it after use)."""
        from .real import RealEvaluator

        rc = self.cfg.real
        spec = self.real_worker_spec(max_steps or rc.max_steps, vae_path, rnn_path, env_backend=rc.env_backend)
        return RealEvaluator(spec, rc.workers,
                             rc.backend, rc.address, rc.rollout_timeout_s, rc.max_attempts, progress=self.progress,
                             patience=rc.patience, common_random_numbers=rc.common_random_numbers)

    def _train_real(self, out_dir: Path, x0: Any, generations: int, sigma0: float) -> dict[str, Any]:
        """CMA-ES with real episodes (see train_controller); prints the projected wall time first."""
        from .es import generations_done, train_controller
        from .real import format_duration, projected_seconds

        self.require(self.rnn_path, f"a trained M at {self.rnn_path}", "train-controller (real)")
        if self.has_frames:
            self.require(self.vae_path, f"a trained V at {self.vae_path}", "train-controller (real)")
        rc = self.cfg.real
        es_cfg = ControllerConfig(popsize=rc.popsize, rollouts=rc.rollouts, sigma0=sigma0, generations=generations,
                                  l2_penalty=rc.l2_penalty, eval_every=rc.eval_every, eval_rollouts=rc.eval_rollouts,
                                  seed=rc.seed)
        projection: dict[str, Any] = {}
        with self.real_evaluator() as ev:
            n = self.controller_size()
            done = generations_done(out_dir)
            if done < generations:
                start = x0 if x0 is not None else [0.0] * n
                probe = ev.probe(start, steps=min(200, rc.max_steps))
                evals_left = sum(1 for g in range(done + 1, generations + 1)
                                 if g % rc.eval_every == 0 or g == generations)
                evals_left += int(x0 is not None and done == 0)
                seconds = projected_seconds(probe["steps_per_s_per_worker"], rc.workers, generations - done,
                                            rc.popsize, rc.rollouts, evals_left, rc.eval_rollouts, rc.max_steps)
                projection = {"seconds": seconds, "steps_per_s_per_worker": probe["steps_per_s_per_worker"],
                              "probe_steps": probe["steps"], "workers": rc.workers, "backend": rc.backend}
                episodes = (generations - done) * rc.popsize * rc.rollouts + evals_left * rc.eval_rollouts
                self.log(
                    f"[wm-fast] real-environment CMA-ES ({self.cfg.preset} preset): {generations - done} generations "
                    f"x {rc.popsize} candidates x {rc.rollouts} episodes + {evals_left} evaluations x "
                    f"{rc.eval_rollouts} episodes = {episodes} episodes of <= {rc.max_steps} steps on "
                    f"{rc.workers} {rc.backend} workers: projected wall time {format_duration(seconds)} "
                    f"(at {probe['steps_per_s_per_worker']:.0f} real steps/s per worker, measured in a "
                    f"{probe['steps']:.0f}-step probe just now, with every episode counted at {rc.max_steps} steps; "
                    f"episodes that end early take less, a busier machine more)")
            metrics = train_controller(ev, n, out_dir, es_cfg, x0=x0, progress=self.progress,
                                       eval_start=x0 is not None, deadline=self.deadline)
        metrics["projection"] = projection
        metrics["start"] = "dream solution" if x0 is not None else "zeros"
        metrics["env_backend"] = rc.env_backend or self.cfg.env_backend
        return metrics

    def score(self, controller_path: Path | str, cfg: "EvalConfig", rnn_path: Path | str | None = None,
              vae_path: Path | None = None, out_json: Path | str | None = None,
              video_path: Path | str | None = None) -> dict[str, Any]:
        """C at `controller_path` in the real env with this run's V and M (or `vae_path`, `rnn_path`):
        `cfg.episodes` episodes from `cfg.seed_start` on cfg's env backend (default the run's). See
        `evaluate.evaluate` for the result; `out_json` and `video_path` are written when given."""
        from .evaluate import evaluate

        return evaluate(self.cfg.env, self.v_path(vae_path), rnn_path or self.rnn_path, controller_path, cfg,
                        env_backend=cfg.env_backend or self.cfg.env_backend, out_json=out_json,
                        video_path=video_path, progress=self.progress, timeout_s=self.cfg.real.rollout_timeout_s)

    def evaluate(self, controller: str = "latest") -> dict[str, Any]:
        """C with V and M in the real environment → D/evaluate.json and a GIF.

        controller: which one (see `controller_models`); "latest" (the default) writes
        D/evaluate.json and .gif, any other name D/evaluate-<controller>.json and .gif.
        """
        models = self.controller_models(controller)
        stage = "evaluate" if controller == "latest" else f"evaluate-{controller}"
        self.require(models["controller"], f"a trained controller at {models['controller']}", stage)

        def score() -> dict[str, Any]:
            result = self.score(models["controller"], self.cfg.evaluate, rnn_path=models["rnn"],
                                vae_path=models["vae"], video_path=self.dir / f"{stage}.gif")
            return {**result, "controller": models["name"], "controller_file": str(models["controller"])}

        return self._record(stage, score)

    def iterate(self, rounds: int) -> dict[str, Any]:
        """Iterative refinement up to `rounds` rounds in all (see iterate.py); resumable."""
        return iterate_module.iterate(self, rounds)

    def run_all(self, log: Callable[[str], None] = print) -> dict[str, Any]:
        """Every stage in order; a stage already complete with this config is skipped.

        With real.run_mode set (the CarRacing `quick` preset), real-environment CMA-ES runs after
        the dream stage; with iterate.run_rounds > 0 (CartPole's presets), that many iterate rounds
        run. Either comes before `evaluate`, which then scores the latest controller.
        """
        results = {}
        for stage in STAGES:
            if stage == "evaluate" and self.cfg.real.run_mode != "off":
                mode = self.cfg.real.run_mode
                name = "train-controller-real" if mode == "real" else "train-controller-dream-real"
                if self.is_complete(name):
                    log(f"[wm-fast] {name}: already complete in {self.stage_file(name)}, skipping")
                else:
                    log(f"[wm-fast] {name}: running")
                    results[name] = self.train_controller(mode)
            if stage == "evaluate" and self.cfg.iterate.run_rounds > 0:
                log(f"[wm-fast] iterate: {self.cfg.iterate.run_rounds} rounds")
                results["iterate"] = self.iterate(self.cfg.iterate.run_rounds)
            if self.is_complete(stage):
                log(f"[wm-fast] {stage}: already complete in {self.stage_file(stage)}, skipping")
                results[stage] = read_json(self.stage_file(stage))["metrics"]
                continue
            log(f"[wm-fast] {stage}: running")
            results[stage] = getattr(self, stage.replace("-", "_"))()
        return results


def load_config(path: Path | str) -> PipelineConfig:
    """A PipelineConfig from a config.json written by Run."""
    from .config import CollectConfig, EvalConfig, RNNConfig, VAEConfig

    from .config import _ENV_PRESETS, _PRESETS, IterateConfig, RealConfig

    d = read_json(path)
    try:
        # Runs made before a section existed get the section of their preset.
        presets = _ENV_PRESETS.get(d.get("env"), _PRESETS)
        base = presets[d["preset"]]() if d.get("preset") in presets else PipelineConfig()
        return PipelineConfig(
            env=d["env"], env_backend=d.get("env_backend", "gymnasium"), preset=d["preset"], collect=CollectConfig(**d["collect"]), vae=VAEConfig(**d["vae"]),
            rnn=RNNConfig(**d["rnn"]), controller=ControllerConfig(**d["controller"]),
            evaluate=EvalConfig(**d["evaluate"]),
            real=RealConfig(**d["real"]) if "real" in d else base.real,
            iterate=IterateConfig(**d["iterate"]) if "iterate" in d else base.iterate,
        )
    except (KeyError, TypeError) as e:
        raise WmFastError(f"{path} is not a wm_fast run config ({e})") from e


def replace(cfg: PipelineConfig, **sections: dict[str, Any]) -> PipelineConfig:
    """A copy of cfg with some fields of some sections replaced: replace(cfg, evaluate={"episodes": 5})."""
    changes = {name: dataclasses.replace(getattr(cfg, name), **fields) for name, fields in sections.items() if fields}
    out = dataclasses.replace(cfg, **changes)
    validate(out)
    return out
