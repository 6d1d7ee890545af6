"""Real-environment episodes of C (with V and M) on worker processes or Ray, fault tolerant.

    spec = worker_spec("carracing", 1000, "D/vae/vae.pt", "D/rnn/rnn.pt", "carracing")
    with RealEvaluator(spec, workers=8, backend="local") as ev:   # or backend="ray"
        returns = ev(params, seed=gen_seed, rollouts=16)           # (P, n) -> (P,)

Workers. Each worker (a spawned process, or a Ray actor) builds one env and one `Agent`
(V, M and C on CPU, `torch.set_num_threads(1)`) once, then runs tasks: a task is one
episode (a CMA-ES rollout, an evaluation episode, a collection episode written as a shard,
or a short speed probe). New controller parameters are copied into the agent's existing
tensor, so nothing is re-created per call and worker memory stays flat; every result carries
the worker's RSS so that this is visible in the logs.

Faults. `WorkerPool.run` hands out one task at a time per worker and watches every worker:
  - a worker that dies (crash, OOM kill, `kill -9`) is noticed through its process
    sentinel (local) or the actor's death (Ray); its task goes back to the front of the
    queue, is run by the next free worker, and a fresh worker replaces the dead one;
  - a task running longer than `timeout_s` is presumed hung: its worker is killed and
    replaced and the task re-run elsewhere;
  - a task that raises is re-run elsewhere too (the traceback is kept);
  - after `max_attempts` tries a task is given up (result None); `RealEvaluator` then
    averages a candidate over its remaining rollouts, or gives it the generation's worst
    mean when none is left;
  - a worker that cannot start (its V/M files unreadable, the env not importable) raises
    `RealEvalError` at once with the worker's traceback, and if no worker becomes ready
    within `start_timeout_s` the call raises too.
Every such event is logged as a warning (logger "wm_fast.real") and returned in the call's
report, which `es.train_controller` writes into that generation's log.jsonl entry. Results
are keyed by task, and each episode depends on its env seed only, so a generation with
faults returns exactly what it would have without them. Nothing waits without a deadline.

Seeds. Rollout r of candidate p in a generation with seed g uses env seed
`rollout_seed(g, p, r)` (a hash of the three), independent of workers and of faults.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import multiprocessing as mp
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .storage import WmFastError

log = logging.getLogger("wm_fast.real")

BACKENDS = ("local", "ray")


class RealEvalError(WmFastError):
    """Real-environment episodes could not be run: workers cannot start, or every try failed."""


def rollout_seed(generation_seed: int, candidate: int, rollout: int) -> int:
    """Env seed of rollout `rollout` of candidate `candidate` in the generation seeded `generation_seed`."""
    state = np.random.SeedSequence([int(generation_seed), int(candidate), int(rollout), 0x7EA1]).generate_state(1)
    return int(state[0] % (2**31 - 1))


def env_action_mapping(env_name: str) -> str:
    """How C's outputs become actions in `env_name`: the registry's, or the env's own
    `action_mapping` attribute for a "module:function" env (default "carracing")."""
    from . import envs

    if ":" not in env_name:
        return envs.spec(env_name).action_mapping
    env = envs.make(env_name, max_steps=1)
    try:
        return str(getattr(env, "action_mapping", "carracing"))
    finally:
        env.close()


# ----------------------------------------------------------------------------- worker side


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker builds once: its env and its agent (V, M from files, C's shape)."""

    env_name: str
    max_steps: int
    vae_path: str
    rnn_path: str
    action_mapping: str
    controller_input: str = "zh"
    vae_bytes: bytes | None = field(default=None, repr=False)
    """The V and M files' bytes, shipped to workers that may not see the files (Ray)."""
    rnn_bytes: bytes | None = field(default=None, repr=False)

    def with_bytes(self) -> "WorkerSpec":
        return dataclasses.replace(self, vae_bytes=Path(self.vae_path).read_bytes(),
                                   rnn_bytes=Path(self.rnn_path).read_bytes())


def worker_spec(env_name: str, max_steps: int, vae_path: Path | str, rnn_path: Path | str,
                action_mapping: str, controller_input: str = "zh") -> WorkerSpec:
    """A WorkerSpec with absolute paths (workers may run in another directory)."""
    return WorkerSpec(env_name, int(max_steps), str(Path(vae_path).resolve()), str(Path(rnn_path).resolve()),
                      action_mapping, controller_input)


@dataclass
class Task:
    """One episode for a worker.

    kind: "rollout" (→ return, steps), "episode" (→ return, steps, frames when
    options["record"]), "collect" (C + options["noise"] exploration noise; writes the shard
    to options["path"]; → return, steps) or "probe" (options["steps"] steps; → steps, seconds).
    params: flat controller parameters (n,) float32. label: how logs name the task.
    """

    kind: str
    seed: int
    params: np.ndarray
    options: dict[str, Any] = field(default_factory=dict)
    label: str = ""


def rss_mb() -> float:
    """Resident memory of this process in MB (Linux /proc; else the peak from getrusage)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):  # pragma: no cover - non-Linux
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class WorkerCore:
    """A worker's env and agent, built once; `run(task)` runs one episode."""

    def __init__(self, spec: WorkerSpec):
        import torch

        from . import envs
        from .evaluate import Agent

        torch.set_num_threads(1)
        vae_path, rnn_path = spec.vae_path, spec.rnn_path
        if spec.vae_bytes is not None and spec.rnn_bytes is not None:  # files shipped to this node
            import tempfile

            folder = Path(tempfile.mkdtemp(prefix="wm_fast_worker_"))
            vae_path, rnn_path = str(folder / "vae.pt"), str(folder / "rnn.pt")
            Path(vae_path).write_bytes(spec.vae_bytes)
            Path(rnn_path).write_bytes(spec.rnn_bytes)
        self.spec = spec
        self.env = envs.make(spec.env_name, max_steps=spec.max_steps)
        self.agent = Agent(vae_path, rnn_path, None, spec.action_mapping, spec.controller_input)

    def run(self, task: Task) -> dict[str, Any]:
        from .evaluate import noisy_episode, run_episode

        t0 = time.perf_counter()
        self.agent.set_params(task.params)
        out: dict[str, Any]
        if task.kind in ("rollout", "episode"):
            record = bool(task.options.get("record", False))
            ret, steps, frames = run_episode(self.env, self.agent, task.seed, record=record,
                                             max_steps=self.spec.max_steps)
            out = {"return": float(ret), "steps": int(steps)}
            if record:
                out["frames"] = frames
        elif task.kind == "collect":
            from .shards import save_episode

            ep = noisy_episode(self.env, self.agent, task.seed, self.spec.max_steps,
                               float(task.options.get("noise", 0.0)))
            save_episode(task.options["path"], **ep)
            out = {"return": float(ep["rewards"].sum(dtype=np.float64)), "steps": int(len(ep["actions"])),
                   "terminated": bool(ep["terminated"])}
        elif task.kind == "probe":
            want, steps, seed = int(task.options.get("steps", 100)), 0, task.seed
            while steps < want:
                _, n, _ = run_episode(self.env, self.agent, seed, max_steps=want - steps)
                steps, seed = steps + n, seed + 1
            out = {"steps": steps}
        else:
            raise ValueError(f"unknown task kind {task.kind!r}")
        out["seconds"] = time.perf_counter() - t0
        out["pid"] = os.getpid()
        out["rss_mb"] = rss_mb()
        return out

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.env.close()


def _local_worker_main(conn, spec: WorkerSpec, parent_pid: int) -> None:
    """A local worker process: build, say ready, then run tasks until None or the pipe closes."""
    from .rollouts import _worker_init

    _worker_init(parent_pid)  # ignore Ctrl-C (the parent handles it), die with the parent
    try:
        core = WorkerCore(spec)
    except BaseException:
        with contextlib.suppress(Exception):
            conn.send(("init_error", traceback.format_exc()))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            break
        if task is None:
            break
        try:
            out = core.run(task)
        except Exception:
            conn.send(("error", traceback.format_exc()))
        else:
            conn.send(("result", out))
    core.close()


class _RayWorker:
    """A Ray actor around WorkerCore (decorated with ray.remote in _RayBackend)."""

    def __init__(self, spec: WorkerSpec):
        self.spec, self.core = spec, None

    def start(self) -> tuple[str, Any]:
        try:
            self.core = WorkerCore(self.spec)
        except Exception:
            return "init_error", traceback.format_exc()
        return "ready", os.getpid()

    def run(self, task: Task) -> tuple[str, Any]:
        try:
            return "result", self.core.run(task)  # type: ignore[union-attr]
        except Exception:
            return "error", traceback.format_exc()


# ----------------------------------------------------------------------------- backends
# A backend runs workers in numbered slots. Events from poll():
#   ("ready", wid, pid) ("init_error", wid, text) ("result", wid, dict) ("error", wid, text)
#   ("died", wid, text). After kill(wid) or a "died" event, nothing more comes from that
#   worker; start(wid) puts a fresh one in the slot.


class _LocalBackend:
    """Spawned worker processes, one duplex pipe each; deaths seen through process sentinels."""

    name = "local"

    def __init__(self, spec: WorkerSpec):
        self.spec = spec
        self.ctx = mp.get_context("spawn")  # never fork a process that holds torch threads
        self.slots: dict[int, tuple[Any, Any]] = {}  # wid -> (process, parent end of the pipe)

    def start(self, wid: int) -> None:
        parent, child = self.ctx.Pipe(duplex=True)
        proc = self.ctx.Process(target=_local_worker_main, args=(child, self.spec, os.getpid()),
                                daemon=True, name=f"wm-fast-worker-{wid}")
        proc.start()
        child.close()
        self.slots[wid] = (proc, parent)

    def submit(self, wid: int, task: Task) -> None:
        with contextlib.suppress(OSError):  # a dead worker: its sentinel reports it in poll()
            self.slots[wid][1].send(task)

    def pid(self, wid: int) -> int | None:
        return self.slots[wid][0].pid if wid in self.slots else None

    def poll(self, timeout: float) -> list[tuple[str, int, Any]]:
        from multiprocessing.connection import wait

        owner: dict[Any, int] = {}
        for wid, (proc, conn) in self.slots.items():
            owner[conn] = wid
            owner[proc.sentinel] = wid
        if not owner:
            time.sleep(timeout)
            return []
        events: list[tuple[str, int, Any]] = []
        for wid in sorted({owner[o] for o in wait(list(owner), timeout)}):
            proc, conn = self.slots[wid]
            broken = False
            try:
                while conn.poll():
                    kind, payload = conn.recv()
                    events.append((kind, wid, payload))
            except (EOFError, OSError):
                broken = True
            if broken or not proc.is_alive():
                proc.join(timeout=5)
                if proc.is_alive():  # closed its pipe but lives on: not usable
                    proc.kill()
                    proc.join(timeout=5)
                events.append(("died", wid, f"worker process {proc.pid} exited (exit code {proc.exitcode})"))
                self._drop(wid)
        return events

    def kill(self, wid: int) -> None:
        if wid in self.slots:
            proc, _ = self.slots[wid]
            proc.kill()
            proc.join(timeout=10)
            self._drop(wid)

    def _drop(self, wid: int) -> None:
        _, conn = self.slots.pop(wid)
        conn.close()

    def close(self) -> None:
        for _, conn in self.slots.values():
            with contextlib.suppress(OSError):
                conn.send(None)
        deadline = time.monotonic() + 5
        for proc, _ in self.slots.values():
            proc.join(timeout=max(0.0, deadline - time.monotonic()))
        for wid in list(self.slots):
            self.kill(wid)


class _RayBackend:
    """One Ray actor per slot (num_cpus=1, no automatic restarts: the pool decides)."""

    name = "ray"

    def __init__(self, spec: WorkerSpec, workers: int, address: str | None):
        try:
            import ray
        except ImportError as e:
            raise RealEvalError("--backend ray needs Ray: pip install 'wm-fast[ray]'") from e
        self.ray = ray
        self.owns_cluster = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address:
                ray.init(address=address, **kwargs)
            else:
                os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private local test cluster
                ray.init(num_cpus=workers, **kwargs)
                self.owns_cluster = True
        self.spec_ref = ray.put(spec.with_bytes())  # V and M travel to every node with the spec
        self.actor_cls = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(_RayWorker)
        self.actors: dict[int, Any] = {}
        self.incarnation: dict[int, int] = collections.defaultdict(int)
        self.refs: dict[Any, tuple[int, int]] = {}  # object ref -> (wid, incarnation)
        self.pids: dict[int, int] = {}

    def start(self, wid: int) -> None:
        self.incarnation[wid] += 1
        actor = self.actor_cls.remote(self.spec_ref)
        self.actors[wid] = actor
        self.refs[actor.start.remote()] = (wid, self.incarnation[wid])

    def submit(self, wid: int, task: Task) -> None:
        self.refs[self.actors[wid].run.remote(task)] = (wid, self.incarnation[wid])

    def pid(self, wid: int) -> int | None:
        return self.pids.get(wid)

    def poll(self, timeout: float) -> list[tuple[str, int, Any]]:
        ray = self.ray
        if not self.refs:
            time.sleep(timeout)
            return []
        refs = list(self.refs)
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        events: list[tuple[str, int, Any]] = []
        for ref in ready:
            wid, inc = self.refs.pop(ref)
            if self.incarnation[wid] != inc or wid not in self.actors:
                continue  # from a worker already killed and replaced
            try:
                kind, payload = ray.get(ref)
            except ray.exceptions.RayActorError as e:
                events.append(("died", wid, f"Ray actor (pid {self.pids.get(wid)}) died: {_first_line(e)}"))
                self._drop(wid)
                continue
            except ray.exceptions.RayError as e:
                events.append(("error", wid, str(e)))
                continue
            if kind == "ready":
                self.pids[wid] = payload
            events.append((kind, wid, payload))
        return events

    def kill(self, wid: int) -> None:
        if wid in self.actors:
            with contextlib.suppress(Exception):
                self.ray.kill(self.actors[wid], no_restart=True)
            self._drop(wid)

    def _drop(self, wid: int) -> None:
        self.actors.pop(wid, None)
        self.pids.pop(wid, None)
        self.incarnation[wid] += 1
        self.refs = {r: v for r, v in self.refs.items() if v[0] != wid}

    def close(self) -> None:
        for wid in list(self.actors):
            self.kill(wid)
        if self.owns_cluster:
            self.ray.shutdown()


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


# ----------------------------------------------------------------------------- the pool


class WorkerPool:
    """`workers` workers on `backend` ("local" or "ray"), started on first use, reused by
    every `run` call until `close()` (or the end of a `with` block). See the module docstring
    for what happens to workers that die, hang or raise.

    Args:
        spec: what each worker builds.
        workers: number of workers (Ray: actors; a local Ray cluster gets this many CPUs).
        backend: "local" (spawned processes) or "ray".
        address: Ray only: an existing cluster; None starts a local one (and shuts it down at close).
        timeout_s: a task running longer is presumed hung (its worker killed, the task re-run).
        max_attempts: tries per task before it is given up.
        start_timeout_s: the call raises if no worker is ready this long after the first started.
    """

    def __init__(self, spec: WorkerSpec, workers: int, backend: str = "local", address: str | None = None,
                 timeout_s: float = 600.0, max_attempts: int = 3, start_timeout_s: float = 300.0):
        if backend not in BACKENDS:
            raise RealEvalError(f"backend must be local or ray, got {backend!r}")
        if workers <= 0 or max_attempts <= 0 or not timeout_s > 0:
            raise RealEvalError(f"need workers > 0, max_attempts > 0, timeout_s > 0; got "
                                f"{workers}, {max_attempts}, {timeout_s}")
        self.spec, self.workers, self.backend_name, self.address = spec, workers, backend, address
        self.timeout_s, self.max_attempts, self.start_timeout_s = timeout_s, max_attempts, start_timeout_s
        self.backend: _LocalBackend | _RayBackend | None = None
        self.state: dict[int, str] = {}  # wid -> "starting" | "idle" | "busy"
        self.since: dict[int, float] = {}
        self.rss: dict[int, float] = {}  # pid -> last reported RSS (MB)
        self.restarts = 0

    # -- lifecycle
    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every worker (and a Ray cluster this pool started)."""
        if self.backend is not None:
            self.backend.close()
            self.backend = None
            self.state.clear()

    def _ensure_started(self) -> None:
        if self.backend is None:
            self.backend = (_LocalBackend(self.spec) if self.backend_name == "local"
                            else _RayBackend(self.spec, self.workers, self.address))
            for wid in range(self.workers):
                self._spawn(wid)

    def _spawn(self, wid: int) -> None:
        assert self.backend is not None
        self.backend.start(wid)
        self.state[wid], self.since[wid] = "starting", time.monotonic()

    def pids(self) -> list[int]:
        """Process ids of the workers that are ready now (local processes or Ray actors)."""
        if self.backend is None:
            return []
        return [p for w, s in sorted(self.state.items()) if s != "starting" and (p := self.backend.pid(w))]

    # -- running tasks
    def run(self, tasks: list[Task], on_result: Callable[[int, dict[str, Any]], None] | None = None,
            ) -> tuple[list[dict[str, Any] | None], dict[str, Any]]:
        """Run every task; returns (results in task order, None for given-up tasks; report).

        report: {"summary": {worker_deaths, timeouts, errors, retried, failed, restarts},
        "events": [one line per fault], "failed": [task indices], "rss_mb": {pid: MB}}.

        Raises:
            RealEvalError: a worker cannot start (its traceback in the message), or no worker
                became ready within start_timeout_s.
        """
        self._ensure_started()
        backend = self.backend
        assert backend is not None
        results: list[dict[str, Any] | None] = [None] * len(tasks)
        attempts = [0] * len(tasks)
        queue = collections.deque(range(len(tasks)))
        running: dict[int, tuple[int, float]] = {}  # wid -> (task index, start time)
        remaining = len(tasks)
        summary = dict(worker_deaths=0, timeouts=0, errors=0, retried=0, failed=0, restarts=0)
        events: list[str] = []
        failed: list[int] = []
        start_deaths = 0

        def note(msg: str, level: int = logging.WARNING) -> None:
            events.append(msg)
            log.log(level, msg)

        def give_back(i: int, why: str) -> None:
            nonlocal remaining
            what = tasks[i].label or f"task {i}"
            if attempts[i] >= self.max_attempts:
                failed.append(i)
                summary["failed"] += 1
                remaining -= 1
                note(f"{what}: {why}; gave up after {attempts[i]} attempts", logging.ERROR)
            else:
                queue.appendleft(i)
                summary["retried"] += 1
                note(f"{what}: {why}; re-queued for another worker (attempt {attempts[i] + 1} of {self.max_attempts})")

        def replace(wid: int) -> None:
            self._spawn(wid)
            self.restarts += 1
            summary["restarts"] += 1

        while remaining:
            for wid in sorted(self.state):
                if not queue:
                    break
                if self.state[wid] == "idle":
                    i = queue.popleft()
                    attempts[i] += 1
                    backend.submit(wid, tasks[i])
                    running[wid] = (i, time.monotonic())
                    self.state[wid], self.since[wid] = "busy", time.monotonic()

            now = time.monotonic()
            deadlines = [t0 + self.timeout_s for _, t0 in running.values()]
            if not any(s != "starting" for s in self.state.values()):
                deadlines += [min(self.since.values()) + self.start_timeout_s]
            wait_s = min([1.0] + [d - now for d in deadlines])
            for kind, wid, payload in backend.poll(max(0.01, wait_s)):
                if kind == "ready":
                    self.state[wid], self.since[wid] = "idle", time.monotonic()
                elif kind == "init_error":
                    raise RealEvalError(f"a {self.backend_name} worker could not start "
                                        f"(env {self.spec.env_name!r}):\n{payload}")
                elif kind == "result":
                    i, _ = running.pop(wid)
                    self.state[wid], self.since[wid] = "idle", time.monotonic()
                    results[i] = payload
                    remaining -= 1
                    if "pid" in payload and "rss_mb" in payload:
                        self.rss[payload["pid"]] = payload["rss_mb"]
                    if on_result is not None:
                        on_result(i, payload)
                elif kind == "error":
                    i, _ = running.pop(wid)
                    self.state[wid], self.since[wid] = "idle", time.monotonic()
                    summary["errors"] += 1
                    give_back(i, f"raised in worker {backend.pid(wid)}:\n{payload.strip()}")
                elif kind == "died":
                    summary["worker_deaths"] += 1
                    was = self.state.get(wid)
                    if wid in running:
                        i, t0 = running.pop(wid)
                        give_back(i, f"{payload} after {time.monotonic() - t0:.1f}s on it")
                    else:
                        note(f"worker slot {wid}: {payload} while {was}; starting a new one")
                    if was == "starting":
                        start_deaths += 1
                        if start_deaths > 2 * self.workers + 2:
                            raise RealEvalError(f"{self.backend_name} workers keep dying before they are "
                                                f"ready ({start_deaths} times); last: {payload}")
                    replace(wid)

            now = time.monotonic()
            for wid, (i, t0) in list(running.items()):
                if now - t0 > self.timeout_s:
                    pid = backend.pid(wid)
                    backend.kill(wid)
                    del running[wid]
                    summary["timeouts"] += 1
                    give_back(i, f"no result after {now - t0:.1f}s (timeout {self.timeout_s:g}s): "
                                 f"worker {pid} presumed hung, killed and replaced")
                    replace(wid)
            if not any(s != "starting" for s in self.state.values()):
                oldest = min(self.since.values())
                if now - oldest > self.start_timeout_s:
                    raise RealEvalError(f"no {self.backend_name} worker became ready within "
                                        f"{self.start_timeout_s:g}s (env {self.spec.env_name!r})")

        alive = set(self.pids())
        self.rss = {p: m for p, m in self.rss.items() if p in alive}
        return results, {"summary": summary, "events": events, "failed": failed, "rss_mb": dict(self.rss)}


# ----------------------------------------------------------------------------- the evaluator


class RealEvaluator:
    """The `es.Evaluator` for real episodes: P candidates × R rollouts spread over a WorkerPool.

    Fitness of a candidate = mean return over its rollouts (those that finished; see the
    module docstring). Attributes after each call: `steps_done` (env steps so far),
    `episodes_done`, `last_report` (the pool's report of the call; `es.train_controller`
    logs it). Use as a context manager, or call `close()`, to stop the workers.
    """

    name = "real"

    def __init__(self, spec: WorkerSpec, workers: int = 2, backend: str = "local", address: str | None = None,
                 timeout_s: float = 600.0, max_attempts: int = 3, progress: bool = False):
        self.pool = WorkerPool(spec, workers, backend, address, timeout_s, max_attempts)
        self.spec, self.progress = spec, progress
        self.steps_done = 0
        self.episodes_done = 0
        self.last_report: dict[str, Any] | None = None

    def __enter__(self) -> "RealEvaluator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.pool.close()

    def __call__(self, params: np.ndarray, seed: int, rollouts: int) -> np.ndarray:
        from tqdm.auto import tqdm

        params = np.asarray(params, dtype=np.float32)
        n_cand = len(params)
        keys = [(p, r) for p in range(n_cand) for r in range(rollouts)]
        tasks = []
        for p, r in keys:
            s = rollout_seed(seed, p, r)
            tasks.append(Task("rollout", s, params[p], label=f"candidate {p} rollout {r} (env seed {s})"))
        bar = tqdm(total=len(tasks), disable=not self.progress, leave=False, desc="real episodes", unit="ep")

        def on_result(i: int, out: dict[str, Any]) -> None:
            bar.update(1)

        try:
            results, report = self.pool.run(tasks, on_result)
        finally:
            bar.close()
        returns = np.full((n_cand, rollouts), np.nan)
        for (p, r), out in zip(keys, results):
            if out is not None:
                returns[p, r] = out["return"]
                self.steps_done += int(out["steps"])
                self.episodes_done += 1
        if np.isnan(returns).all():
            raise RealEvalError("every real episode of this call failed; last events:\n" +
                                "\n".join(report["events"][-3:]))
        done = ~np.isnan(returns)
        means = np.where(done.any(1), np.nansum(returns, 1) / np.maximum(done.sum(1), 1), np.nan)
        empty = np.flatnonzero(np.isnan(means))
        if len(empty):
            worst = float(np.nanmin(means))
            means[empty] = worst
            msg = f"candidates {empty.tolist()} lost every rollout: given the worst mean of the call, {worst:.2f}"
            report["events"].append(msg)
            log.error(msg)
        self.last_report = report
        return means

    def probe(self, params: np.ndarray, steps: int = 200) -> dict[str, float]:
        """Measure real steps/s: each worker runs `steps` steps with controller `params` (n,).

        Returns {"steps_per_s_per_worker" (median over workers), "workers", "steps"}.
        """
        params = np.asarray(params, dtype=np.float32)
        n = self.pool.workers
        tasks = [Task("probe", 1_000_000_007 + k, params, {"steps": steps}, label=f"speed probe {k}")
                 for k in range(n)]
        results, _ = self.pool.run(tasks)
        rates = [r["steps"] / r["seconds"] for r in results if r is not None and r["seconds"] > 0]
        return {"steps_per_s_per_worker": float(np.median(rates)) if rates else float("nan"),
                "workers": float(n), "steps": float(steps)}


def projected_seconds(steps_per_s_per_worker: float, workers: int, generations: int, popsize: int,
                      rollouts: int, evaluations: int, eval_rollouts: int, max_steps: int) -> float:
    """Wall time of a real-environment CMA-ES run at the given speed, counting every episode
    at `max_steps` steps (an upper bound when episodes end early) and assuming the workers
    share the episodes perfectly."""
    episodes = generations * popsize * rollouts + evaluations * eval_rollouts
    return episodes * max_steps / max(steps_per_s_per_worker * workers, 1e-9)


def format_duration(seconds: float) -> str:
    """3.2 h, 41 min, 12 s, 2.5 days."""
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"

