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
"""

from __future__ import annotations

import dataclasses
import platform
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

from .config import ConfigError, PipelineConfig, get_preset, validate
from .storage import MissingStageError, WmFastError, atomic_write_json, read_json
from .shards import list_episodes

STAGES = ("collect", "train-vae", "encode", "train-rnn", "train-controller", "evaluate")

# Which part of the config each stage depends on (a change there makes a stage stale).
_STAGE_SECTIONS = {
    "collect": ("collect",),
    "train-vae": ("collect", "vae"),
    "encode": ("collect", "vae"),
    "train-rnn": ("collect", "vae", "rnn"),
    "train-controller": ("collect", "vae", "rnn", "controller"),
    "evaluate": ("collect", "vae", "rnn", "controller", "evaluate"),
}


def git_commit() -> str:
    """The commit of the wm_fast source tree ('-dirty' when it has uncommitted changes), or 'unknown'."""
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=7"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent, timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_description() -> str:
    """A one-line description of this machine for results files."""
    import os

    return f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus, {platform.python_version()}"


def _stage_config(cfg: PipelineConfig, stage: str) -> dict[str, Any]:
    d = cfg.to_dict()
    out = {"env": d["env"]}
    for section in _STAGE_SECTIONS[stage]:
        section_dict = dict(d[section])
        section_dict.pop("workers", None)  # parallelism does not change results
        out[section] = section_dict
    return out


def _diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    diffs = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            diffs += _diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            diffs.append(f"{prefix}{k}: {va!r} -> {vb!r}")
    return diffs


class Run:
    """One run directory and the stages that fill it (see module docstring).

    Args:
        run_dir: the folder; created if missing.
        cfg: the config; when None, the run's saved config.json (or the `quick` preset).
        progress: show progress bars.
        save_config: write cfg as the run's config.json (False for one-off overrides of one stage).
    """

    def __init__(self, run_dir: Path | str, cfg: PipelineConfig | None = None, progress: bool = True,
                 save_config: bool = True):
        self.dir = Path(run_dir)
        saved = self.dir / "config.json"
        if cfg is None:
            cfg = load_config(saved) if saved.exists() else get_preset("quick")
        validate(cfg)
        self.cfg = cfg
        self.progress = progress
        self.dir.mkdir(parents=True, exist_ok=True)
        if save_config or not saved.exists():
            for stage in STAGES:  # refuse (ConfigError) before overwriting a run made with another config
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
    def rnn_path(self) -> Path:
        return self.dir / "rnn" / "rnn.pt"

    @property
    def controller_dir(self) -> Path:
        return self.dir / "controller"

    @property
    def controller_path(self) -> Path:
        return self.controller_dir / "controller.pt"

    # ---- bookkeeping
    def stage_file(self, stage: str) -> Path:
        return self.dir / f"{stage}.json"

    def is_complete(self, stage: str) -> bool:
        """True when `stage` finished with this run's config; ConfigError if it finished with another."""
        path = self.stage_file(stage)
        if not path.exists():
            return False
        record = read_json(path)
        diffs = _diff(record.get("config", {}), _stage_config(self.cfg, stage))
        if diffs and stage == "evaluate":
            return False  # evaluation settings changed: evaluate again, nothing downstream depends on it
        if diffs:
            raise ConfigError(
                f"stage {stage} in {self.dir} was completed with a different config ({'; '.join(diffs)}); "
                f"use a new --run-dir, or delete {path} to redo it")
        return bool(record.get("complete"))

    def _record(self, stage: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        start = time.perf_counter()
        metrics = fn()
        # evaluate.json is both the stage record and the evaluation: its figures sit at the top.
        flat = metrics if stage == "evaluate" else {}
        record = {
            **flat, "stage": stage, "complete": True, "metrics": metrics,
            "config": _stage_config(self.cfg, stage), "seconds": time.perf_counter() - start,
            "commit": git_commit(), "machine": machine_description(),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        atomic_write_json(self.stage_file(stage), record)
        return metrics

    def _need(self, what: Path | dict, description: str, stage: str) -> None:
        missing = (not what) if isinstance(what, dict) else (not what.exists())
        if missing:
            raise MissingStageError(f"{stage} needs {description}, which {self.dir} lacks; "
                                    f"run the earlier stages first (wm-fast run --run-dir {self.dir})")

    # ---- stages
    def collect(self) -> dict[str, Any]:
        """Random-policy episodes → D/episodes (resumable)."""
        from .rollouts import collect

        return self._record("collect", lambda: collect(self.episodes_dir, self.cfg.collect,
                                                       env_name=self.cfg.env, progress=self.progress))

    def train_vae(self) -> dict[str, Any]:
        """Train V on the episodes' frames → D/vae (resumable per epoch)."""
        from .train_vae import train_vae

        files = list(list_episodes(self.episodes_dir).values())
        self._need(dict(enumerate(files)), f"episode shards in {self.episodes_dir}", "train-vae")
        return self._record("train-vae", lambda: train_vae(files, self.vae_path.parent, self.cfg.vae,
                                                           progress=self.progress))

    def encode(self) -> dict[str, Any]:
        """Encode every episode with V → D/latents (resumable per episode)."""
        from .encode import encode_episodes
        from .train_vae import load_vae

        self._need(self.vae_path, f"a trained V at {self.vae_path}", "encode")
        files = list(list_episodes(self.episodes_dir).values())
        vae = load_vae(self.vae_path)
        return self._record("encode", lambda: encode_episodes(files, vae, self.latents_dir,
                                                              progress=self.progress))

    def train_rnn(self) -> dict[str, Any]:
        """Train M on the latent sequences → D/rnn (resumable per epoch)."""
        from .envs import spec
        from .train_rnn import train_rnn

        files = list(list_episodes(self.latents_dir).values())
        self._need(dict(enumerate(files)), f"latent files in {self.latents_dir}", "train-rnn")
        return self._record("train-rnn", lambda: train_rnn(files, self.rnn_path.parent, self.cfg.rnn,
                                                           action_dim=spec(self.cfg.env).action_dim,
                                                           progress=self.progress))

    def train_controller(self) -> dict[str, Any]:
        """CMA-ES on C inside M's dream → D/controller (resumable per generation)."""
        from .controller import input_size, n_params, output_size
        from .encode import initial_latents
        from .envs import spec
        from .es import DreamEvaluator, train_controller
        from .train_rnn import load_mdnrnn

        self._need(self.rnn_path, f"a trained M at {self.rnn_path}", "train-controller")
        env = spec(self.cfg.env)
        model = load_mdnrnn(self.rnn_path)
        init_mu, init_logvar = initial_latents(list(list_episodes(self.latents_dir).values()))
        evaluator = DreamEvaluator(model, init_mu, init_logvar, self.cfg.controller,
                                   action_mapping=env.action_mapping, controller_input="zh",
                                   reward_source="model")
        n = n_params(input_size(model.z_dim, model.hidden, "zh"), output_size(env.action_mapping, env.action_dim))
        return self._record("train-controller", lambda: train_controller(
            evaluator, n, self.controller_dir, self.cfg.controller, progress=self.progress))

    def evaluate(self) -> dict[str, Any]:
        """C with V and M in the real environment → D/evaluate.json and a GIF."""
        from .evaluate import evaluate

        self._need(self.controller_path, f"a trained controller at {self.controller_path}", "evaluate")
        return self._record("evaluate", lambda: evaluate(
            self.cfg.env, self.vae_path, self.rnn_path, self.controller_path, self.cfg.evaluate,
            out_json=None, video_path=self.dir / "evaluate.gif",
            progress=self.progress))

    def run_all(self, log: Callable[[str], None] = print) -> dict[str, Any]:
        """Every stage in order; a stage already complete with this config is skipped."""
        results = {}
        for stage in STAGES:
            if self.is_complete(stage):
                log(f"[wm-fast] {stage}: already complete in {self.stage_file(stage)}, skipping")
                results[stage] = read_json(self.stage_file(stage))["metrics"]
                continue
            log(f"[wm-fast] {stage}: running")
            results[stage] = getattr(self, stage.replace("-", "_"))()
        return results


def load_config(path: Path | str) -> PipelineConfig:
    """A PipelineConfig from a config.json written by Run."""
    from .config import CollectConfig, ControllerConfig, EvalConfig, RNNConfig, VAEConfig

    d = read_json(path)
    try:
        return PipelineConfig(
            env=d["env"], preset=d["preset"], collect=CollectConfig(**d["collect"]), vae=VAEConfig(**d["vae"]),
            rnn=RNNConfig(**d["rnn"]), controller=ControllerConfig(**d["controller"]),
            evaluate=EvalConfig(**d["evaluate"]),
        )
    except (KeyError, TypeError) as e:
        raise WmFastError(f"{path} is not a wm_fast run config ({e})") from e


def replace(cfg: PipelineConfig, **sections: dict[str, Any]) -> PipelineConfig:
    """A copy of cfg with some fields of some sections replaced: replace(cfg, evaluate={"episodes": 5})."""
    changes = {name: dataclasses.replace(getattr(cfg, name), **fields) for name, fields in sections.items() if fields}
    out = dataclasses.replace(cfg, **changes)
    validate(out)
    return out
