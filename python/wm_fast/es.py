"""CMA-ES driver for C (package `cma`, ask/tell), with evaluators, checkpoints and logs.

Every generation the full state is saved atomically in one file, `es_state.pt`
(loads with `weights_only=True`): the pickled CMA-ES object as a uint8 tensor (see
`_pickle_es`: its references to numpy's global RNG stay references), numpy's global RNG
state (which `cma` samples from), the generation counter,
the current mean and the best solutions (best candidate seen, best evaluated mean), the
periodic evaluations and the log; each evaluated mean is also kept as a checkpoint of its own
(`snapshot_path`), so any evaluated generation can be scored later. A kill at any moment loses
at most the generation in flight; rerunning continues with the same mean, step size and random
stream, and (evaluators being deterministic given their seed) ends with the same result as an
uninterrupted run.

Evaluators: `DreamEvaluator` here (the whole population in one dream call) and
`wm_fast.real.RealEvaluator` (real episodes on worker processes or Ray). An evaluator may
expose `steps_done` (env or dream steps so far, for steps/s), `episodes_done`, and
`last_report` (faults of its last call: worker deaths, hangs, retries), which goes into the
generation's log entry.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import pickle
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import ControllerConfig
from .dream import DreamOptions, dream, resolve_backend
from .mdnrnn import MDNRNN
from .scalars import Scalars
from .errors import TimeBudgetReached
from .storage import CheckpointError, atomic_write_bytes, dumps_json, load_checkpoint, save_checkpoint

STATE_FILE = "es_state.pt"
CONTROLLER_FILE = "controller.pt"
SNAPSHOT_FOLDER = "means"


def snapshot_path(out_dir: Path | str, generation: int) -> Path:
    """The CMA-ES mean evaluated after `generation` generations: a controller.pt-like checkpoint
    (params (n,), generation, eval_return, evaluator, config), so that any evaluated generation can be
    scored or chosen later, not only the best one by the evaluator's own score."""
    return Path(out_dir) / SNAPSHOT_FOLDER / f"generation_{generation:04d}.pt"

log = logging.getLogger("wm_fast.es")


class Evaluator(Protocol):
    """Scores a population: params (P, n) float32 → mean return per candidate (P,)."""

    name: str

    def __call__(self, params: np.ndarray, seed: int, rollouts: int) -> np.ndarray: ...


class DreamEvaluator:
    """Evaluates the whole population inside M in one dream call.

    With `common_random_numbers`, every candidate of a call dreams with the same noise for
    rollout r (same start states, same samples), so candidates are ranked on equal draws.
    cfg.dream_dropout > 0 dreams with dropout (one mask pair per rollout, DreamOptions.dropout).
    """

    name = "dream"

    def __init__(self, model: MDNRNN, init_mu: torch.Tensor, init_logvar: torch.Tensor,
                 cfg: ControllerConfig, action_mapping: str = "carracing",
                 controller_input: str = "zh", reward_source: str = "model",
                 common_random_numbers: bool = False):
        self.model, self.init_mu, self.init_logvar, self.cfg = model, init_mu, init_logvar, cfg
        self.common_random_numbers = bool(common_random_numbers)
        self.action_mapping, self.controller_input, self.reward_source = (
            action_mapping, controller_input, reward_source)
        self.backend = resolve_backend(cfg.backend)
        self.steps_done = 0

    def with_config(self, cfg: ControllerConfig) -> "DreamEvaluator":
        """The same M, start latents and env facts with other settings (e.g. another temperature)."""
        return DreamEvaluator(self.model, self.init_mu, self.init_logvar, cfg, action_mapping=self.action_mapping,
                              controller_input=self.controller_input, reward_source=self.reward_source,
                              common_random_numbers=cfg.common_random_numbers)

    @property
    def n_params(self) -> int:
        """Parameters of one C for this M, controller input and action mapping."""
        from .controller import n_params_for

        return n_params_for(self.model, self.controller_input, self.action_mapping)  # type: ignore[arg-type]

    def options(self, seed: int, rollouts: int) -> DreamOptions:
        """The DreamOptions of a call: this evaluator's settings with `seed` and `rollouts` per candidate."""
        return DreamOptions(
            steps=self.cfg.dream_steps, rollouts=rollouts, temperature=self.cfg.temperature,
            seed=seed, action_mapping=self.action_mapping, controller_input=self.controller_input,
            reward_source=self.reward_source, done_threshold=self.cfg.done_threshold,
            common_random_numbers=self.common_random_numbers, dropout=self.cfg.dream_dropout,
        )

    def __call__(self, params: np.ndarray, seed: int, rollouts: int) -> np.ndarray:
        result = dream(self.model, torch.as_tensor(params, dtype=torch.float32), self.init_mu,
                       self.init_logvar, self.options(seed, rollouts), backend=self.backend)  # type: ignore[arg-type]
        self.steps_done += int(result.lengths.sum())
        return result.returns.mean(dim=1).double().numpy()


class EnsembleDreamEvaluator:
    """Several Ms' dreams share each candidate's rollouts: M k dreams rollouts / K of them (the same
    seed, start latents and settings for all); a candidate's return is the mean over all K * (rollouts / K).

    Args:
        members: one DreamEvaluator per M, the run's own first; their C sizes must match.
    Raises:
        ValueError: no members, or Cs of different sizes.
    """

    name = "dream"

    def __init__(self, members: list[DreamEvaluator]):
        if not members:
            raise ValueError("an ensemble needs at least one M")
        if len({m.n_params for m in members}) != 1:
            raise ValueError(f"the Ms' controllers differ in size: {[m.n_params for m in members]}")
        self.members = list(members)

    @property
    def cfg(self) -> ControllerConfig:
        return self.members[0].cfg

    @property
    def n_params(self) -> int:
        return self.members[0].n_params

    @property
    def steps_done(self) -> int:
        return sum(m.steps_done for m in self.members)

    def with_config(self, cfg: ControllerConfig) -> "EnsembleDreamEvaluator":
        return EnsembleDreamEvaluator([m.with_config(cfg) for m in self.members])

    def __call__(self, params: np.ndarray, seed: int, rollouts: int) -> np.ndarray:
        k = len(self.members)
        if rollouts % k:
            raise ValueError(f"{rollouts} rollouts do not split evenly among {k} Ms")
        return np.mean([m(params, seed, rollouts // k) for m in self.members], axis=0)


def _generation_seed(seed: int, generation: int, salt: int = 0) -> int:
    return (seed * 1_000_003 + generation * 7_919 + salt * 104_729) % (2**31 - 1)


def _np_rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}


def _set_np_rng_state(s: dict[str, Any]) -> None:
    np.random.set_state(("MT19937", s["keys"].numpy().astype(np.uint32), s["pos"],
                         s["has_gauss"], s["cached"]))


def _global_np_rng() -> np.random.RandomState:
    """numpy's global RandomState: the one behind np.random.randn and np.random.randint."""
    return np.random.randn.__self__  # type: ignore[attr-defined]


_GLOBAL_NP_RNG_ID = "numpy.random global RandomState"


class _ESPickler(pickle.Pickler):
    """Pickles numpy's global RandomState as a reference, not as a copy of it."""

    def persistent_id(self, obj: Any) -> str | None:
        return _GLOBAL_NP_RNG_ID if obj is _global_np_rng() else None


class _ESUnpickler(pickle.Unpickler):
    """Binds the reference back to numpy's global RandomState (see `_pickle_es`)."""

    def persistent_load(self, pid: Any) -> Any:
        if pid == _GLOBAL_NP_RNG_ID:
            return _global_np_rng()
        raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("numpy.random._pickle", "__randomstate_ctor"):
            # a state written before the fix holds a copy of the global RandomState, taken at the
            # moment np_rng was saved: set the global one to it rather than sampling from a copy
            return lambda *args, **kwargs: _global_np_rng()
        return super().find_class(module, name)


def _pickle_es(es: Any) -> bytes:
    """The CMA-ES object as bytes, its references to numpy's global RNG kept as references.

    cma draws from numpy's global RandomState through two paths: the sampler's `randn` (the
    bound method np.random.randn, also in opts['randn']) in `ask`, and module-level
    `np.random.randint` (TPA step-size control, used at n >= 300, draws two integers in every
    `tell` after the third). A plain pickle (`es.pickle_dumps()`) turns the bound method into a
    private copy of the RandomState, so a resumed run sampled from that copy while `tell` drew
    from the restored global one: the two streams, one in an uninterrupted run, split, and the
    run diverged from the second generation after a resume.
    """
    def dump() -> bytes:
        buf = io.BytesIO()
        _ESPickler(buf, protocol=pickle.DEFAULT_PROTOCOL).dump(es)
        return buf.getvalue()

    try:
        return dump()
    except Exception:  # as es.pickle_dumps(): drop an unpicklable objective function (set by es.optimize)
        if not hasattr(es, "objective_function"):
            raise
        es.objective_function, fun = None, es.objective_function
        try:
            return dump()
        finally:
            es.objective_function = fun


def _unpickle_es(data: bytes) -> Any:
    """The CMA-ES object of `_pickle_es` (or of a plain pickle), sampling from numpy's global RNG."""
    return _ESUnpickler(io.BytesIO(data)).load()


def _new_es(n: int, cfg: ControllerConfig, x0: np.ndarray | None):
    import cma

    np.random.seed(cfg.seed)
    # cma treats seed 0 as "random"; shift so that every cfg.seed is reproducible.
    opts = {"popsize": cfg.popsize, "seed": cfg.seed + 1, "verbose": -9, "CMA_diagonal": False}
    return cma.CMAEvolutionStrategy(np.zeros(n) if x0 is None else x0, cfg.sigma0, opts)


def generations_done(out_dir: Path | str) -> int:
    """Generations already finished in `out_dir` (0 when it holds no CMA-ES state)."""
    path = Path(out_dir) / STATE_FILE
    if not path.exists():
        return 0
    return int(load_checkpoint(path, required=("generation",))["generation"])


def _fault_fields(report: dict[str, Any] | None) -> dict[str, Any]:
    """Log-entry fields from an evaluator's report: faults (when any) and worker memory."""
    if not report:
        return {}
    out: dict[str, Any] = {}
    if report.get("events"):
        out["faults"] = {**{k: v for k, v in report.get("summary", {}).items() if v}, "events": report["events"]}
    if report.get("rss_mb"):
        out["worker_rss_mb"] = {str(pid): round(mb, 1) for pid, mb in report["rss_mb"].items()}
    return out


def train_controller(
    evaluator: Evaluator,
    n_params: int,
    out_dir: Path | str,
    cfg: ControllerConfig,
    x0: np.ndarray | None = None,
    progress: bool = True,
    on_generation: Callable[[int], None] | None = None,
    eval_start: bool = False,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Run (or resume) CMA-ES for cfg.generations generations.

    Fitness of a candidate = mean return over cfg.rollouts rollouts − l2_penalty·mean(x²),
    maximised (cma minimises its negative). Every cfg.eval_every generations, and at the
    end, the CMA mean is scored on cfg.eval_rollouts rollouts; the best such mean is the
    final controller, saved as `controller.pt` {"params": (n,), "mean_params",
    "eval_return", "evaluator", ...}. With `eval_start`, the starting point x0 is scored
    first too (generation 0), so a run that starts from a solution never ends worse than it.

    log.jsonl gets one line per generation: generation, best / mean / worst return, sigma,
    wall_s, elapsed_s, steps_per_s, steps (env or dream steps of the generation), evaluator,
    episodes (when the evaluator counts them),
    faults (worker deaths, hangs, retries, with one line per event, only when there were
    any), worker_rss_mb (per worker, when the evaluator reports it) and, on evaluation
    generations, mean_solution_return.

    With a `deadline` (a `time.monotonic()` value), the first generation saved after it ends
    the call with TimeBudgetReached: resuming from that state gives the uninterrupted result.
    `controller.pt` then holds the best evaluated mean so far ("complete": False), so the
    unfinished run can be scored.

    With cfg.restarts > 1 the whole run is repeated in out_dir/restart_k with seed cfg.seed + k
    (restart 0 is the run cfg.restarts = 1 would make) and `_choose_restart` picks one.

    Returns: metrics dict (generations, best_eval_return, evals, last, seconds, ...).
    """
    if cfg.restarts > 1:
        runs = [train_controller(evaluator, n_params, Path(out_dir) / f"restart_{k}",
                                 dataclasses.replace(cfg, restarts=1, seed=cfg.seed + k), x0=x0, progress=progress,
                                 on_generation=on_generation, eval_start=eval_start, deadline=deadline)
                for k in range(cfg.restarts)]
        return _choose_restart(evaluator, Path(out_dir), cfg, runs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state_path = out_dir / STATE_FILE
    if state_path.exists():
        state = load_checkpoint(state_path, required=("es_pickle", "generation", "history", "np_rng"))
        es = _unpickle_es(state["es_pickle"].numpy().tobytes())
        if es.N != n_params:
            raise CheckpointError(f"{state_path} holds a CMA-ES over {es.N} parameters, expected {n_params}")
        _set_np_rng_state(state["np_rng"])
        generation = int(state["generation"])
        history: list[dict] = list(state["history"])
        evals: list[dict] = list(state.get("evals", []))
        best_eval = state.get("best_eval")
        best_eval_params = state.get("best_eval_params")
        best_return = state.get("best_return")
        best_params = state.get("best_params")
    else:
        es = _new_es(n_params, cfg, x0)
        generation, history, evals = 0, [], []
        best_eval, best_eval_params = None, None
        best_return, best_params = None, None

    def write_log() -> None:
        atomic_write_bytes(out_dir / "log.jsonl",
                           "".join(dumps_json(h) + "\n" for h in history).encode())

    def save() -> None:
        save_checkpoint(state_path, {
            "es_pickle": torch.frombuffer(bytearray(_pickle_es(es)), dtype=torch.uint8),
            "np_rng": _np_rng_state(), "generation": generation, "history": history,
            "evals": evals, "best_eval": best_eval, "best_eval_params": best_eval_params,
            "mean_params": torch.as_tensor(np.asarray(es.mean), dtype=torch.float32),
            "sigma": float(es.sigma), "best_return": best_return, "best_params": best_params,
            "seed": cfg.seed, "config": dataclasses.asdict(cfg),
        })
        write_log()

    def write_controller() -> None:
        save_checkpoint(out_dir / CONTROLLER_FILE, {
            "params": best_eval_params, "mean_params": torch.as_tensor(np.asarray(es.mean), dtype=torch.float32),
            "eval_return": best_eval, "evaluator": evaluator.name, "generation": generation,
            "complete": generation >= cfg.generations, "config": dataclasses.asdict(cfg),
            **({"dream_return": best_eval} if evaluator.name == "dream" else {}),
        })
        plot_curves(history, evals, out_dir / "curve.png")

    def evaluate_mean() -> dict[str, Any]:
        nonlocal best_eval, best_eval_params
        mean = np.asarray(es.mean, dtype=np.float32)
        steps_before, t0 = getattr(evaluator, "steps_done", 0), time.perf_counter()
        score = float(evaluator(mean[None], _generation_seed(cfg.seed, generation, salt=1),
                                cfg.eval_rollouts)[0])
        entry = {"generation": generation, "mean_solution_return": score, "rollouts": cfg.eval_rollouts,
                 "steps": getattr(evaluator, "steps_done", 0) - steps_before, "wall_s": time.perf_counter() - t0,
                 **_fault_fields(getattr(evaluator, "last_report", None))}
        entry.pop("worker_rss_mb", None)
        evals.append(entry)
        if best_eval is None or score > best_eval:
            best_eval, best_eval_params = score, torch.from_numpy(mean.copy())
        save_checkpoint(snapshot_path(out_dir, generation), {
            "params": torch.from_numpy(mean.copy()), "generation": generation, "eval_return": score,
            "evaluator": evaluator.name, "config": dataclasses.asdict(cfg)})
        return entry

    start = time.perf_counter()
    scalars = Scalars(out_dir / "tensorboard")
    if eval_start and generation == 0 and not evals:
        entry = evaluate_mean()
        log.info("starting point scored %.2f over %d %s rollouts", entry["mean_solution_return"],
                 cfg.eval_rollouts, evaluator.name)
        save()
    bar = tqdm(total=cfg.generations, initial=min(generation, cfg.generations), disable=not progress,
               desc=f"CMA-ES ({evaluator.name})", unit="gen")
    while generation < cfg.generations:
        t0 = time.perf_counter()
        steps_before = getattr(evaluator, "steps_done", 0)
        episodes_before = getattr(evaluator, "episodes_done", None)
        solutions = np.asarray(es.ask(), dtype=np.float64)
        returns = evaluator(solutions.astype(np.float32), _generation_seed(cfg.seed, generation), cfg.rollouts)
        if not np.isfinite(returns).all():
            raise RuntimeError(f"generation {generation}: evaluator returned non-finite returns")
        fitness = returns - cfg.l2_penalty * np.mean(solutions**2, axis=1)
        es.tell(list(solutions), list(-fitness))
        wall = time.perf_counter() - t0
        steps = getattr(evaluator, "steps_done", 0) - steps_before
        generation += 1
        k = int(np.argmax(returns))
        if best_return is None or returns[k] > best_return:
            best_return, best_params = float(returns[k]), torch.as_tensor(solutions[k], dtype=torch.float32)
        entry: dict[str, Any] = {
            "generation": generation, "best": float(returns.max()), "mean": float(returns.mean()),
            "worst": float(returns.min()), "sigma": float(es.sigma), "wall_s": wall,
            "elapsed_s": (history[-1].get("elapsed_s", 0.0) if history else 0.0) + wall,
            "steps_per_s": steps / wall if wall > 0 else 0.0, "steps": steps, "evaluator": evaluator.name,
        }
        if episodes_before is not None:
            entry["episodes"] = getattr(evaluator, "episodes_done") - episodes_before
        entry.update(_fault_fields(getattr(evaluator, "last_report", None)))
        if "faults" in entry:
            log.warning("generation %d completed despite faults: %s", generation,
                        {k: v for k, v in entry["faults"].items() if k != "events"})
        history.append(entry)
        if generation % cfg.eval_every == 0 or generation == cfg.generations:
            entry["mean_solution_return"] = evaluate_mean()["mean_solution_return"]
        save()
        scalars.add({k: entry.get(k) for k in ("best", "mean", "worst", "sigma", "steps_per_s", "mean_solution_return")},
                    generation, f"C ({evaluator.name})/")
        if on_generation is not None:
            on_generation(generation)
        bar.update(1)
        bar.set_postfix(best=f"{returns.max():.1f}", mean=f"{returns.mean():.1f}", sigma=f"{es.sigma:.3f}")
        if deadline is not None and time.monotonic() >= deadline and generation < cfg.generations:
            bar.close()
            scalars.close()
            if best_eval_params is not None:
                write_controller()
            raise TimeBudgetReached(f"time budget reached after generation {generation} of {cfg.generations}; "
                                    f"CMA-ES state saved in {state_path}: run the same command again to continue")
    bar.close()
    scalars.close()

    if best_eval_params is None:  # resumed a finished run that never evaluated
        evaluate_mean()
        save()
    write_log()  # a kill between the state and the log leaves the log one line short
    write_controller()
    return {
        "generations": generation, "best_eval_return": best_eval, "evals": evals, "evaluator": evaluator.name,
        "last": history[-1] if history else None, "seconds_this_call": time.perf_counter() - start,
        "total_wall_s": float(sum(h["wall_s"] for h in history)),
    }


def _choose_restart(evaluator: Evaluator, out_dir: Path, cfg: ControllerConfig,
                    runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Score each restart's controller on cfg.eval_rollouts fresh rollouts under one seed unused by the
    runs (in a dream: the same dreams for all, common random numbers), copy the best one's controller.pt
    (with the scores), log.jsonl and curve.png to out_dir, and return its metrics with "restart" and
    "restart_returns" added. A rerun with the same restarts' Cs and choice settings reuses the stored choice."""
    import hashlib

    folders = [out_dir / f"restart_{k}" for k in range(len(runs))]
    params = np.stack([load_controller(f / CONTROLLER_FILE).numpy() for f in folders]).astype(np.float32)
    # what the choice depends on; a rerun of a finished choice reuses it instead of scoring again
    setting = f"{evaluator.name} {cfg.eval_rollouts} {cfg.seed}".encode()
    fingerprint = hashlib.sha256(params.tobytes() + setting).hexdigest()
    done = out_dir / CONTROLLER_FILE
    previous = load_checkpoint(done) if done.exists() else {}
    if previous.get("restart_fingerprint") == fingerprint:
        best, scores = int(previous["restart"]), np.asarray(previous["restart_returns"])
    else:
        if isinstance(evaluator, DreamEvaluator):
            evaluator = evaluator.with_config(dataclasses.replace(evaluator.cfg, common_random_numbers=True))
        scores = evaluator(params, _generation_seed(cfg.seed, 0, salt=2), cfg.eval_rollouts)
        best = int(np.argmax(scores))
        log.info("restarts scored %s over %d %s rollouts: restart %d chosen",
                 [round(float(x), 1) for x in scores], cfg.eval_rollouts, evaluator.name, best)
        chosen = load_checkpoint(folders[best] / CONTROLLER_FILE, required=("params",))
        save_checkpoint(done, {**chosen, "restart": best, "restart_returns": [float(x) for x in scores],
                               "restart_fingerprint": fingerprint})
    for name in ("log.jsonl", "curve.png"):
        if (folders[best] / name).exists():
            shutil.copyfile(folders[best] / name, out_dir / name)
    return {**runs[best], "restart": best, "restart_returns": [float(x) for x in scores],
            "restart_rollouts": cfg.eval_rollouts}


def load_controller(path: Path | str) -> torch.Tensor:
    """Flat controller params (n,) from controller.pt, checked finite."""
    state = load_checkpoint(path, required=("params",))
    params = state["params"]
    if not isinstance(params, torch.Tensor) or params.dim() != 1:
        raise CheckpointError(f"{path}: 'params' must be a 1-D tensor")
    if not torch.isfinite(params).all():
        raise CheckpointError(f"{path}: 'params' holds NaN or infinite values")
    return params.float()


def plot_curves(history: list[dict], evals: list[dict], path: Path) -> None:
    """PNG of best / mean / worst return per generation and the periodic mean evaluations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not history:
        return
    g = [h["generation"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.fill_between(g, [h["worst"] for h in history], [h["best"] for h in history], alpha=0.2,
                    label="population range")
    ax.plot(g, [h["mean"] for h in history], label="population mean")
    ax.plot(g, [h["best"] for h in history], lw=0.8, label="best candidate")
    if evals:
        ax.plot([e["generation"] for e in evals], [e["mean_solution_return"] for e in evals], "o-",
                label="CMA mean, many rollouts")
    ax.set_xlabel("generation")
    ax.set_ylabel(f"return ({history[-1]['evaluator']})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    buf_path = path.with_suffix(".tmp.png")
    fig.savefig(buf_path, dpi=100)
    plt.close(fig)
    buf_path.replace(path)
