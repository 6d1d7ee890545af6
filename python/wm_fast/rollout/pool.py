"""One worker pool for every real-environment job: local processes or Ray, fault tolerant.

    spec = WorkerSpec("carracing", "gymnasium", max_steps=1000, num_envs=8,
                      vae_path="D/vae/vae.pt", rnn_path="D/rnn/rnn.pt")
    with WorkerPool(spec, workers=2) as pool:                      # or backend="ray"
        results, report = run_requests(pool, [EpisodeRequest(seed, params) ...])

Workers. Each worker (a spawned process, a Ray actor, or this process for backend "inline")
builds once a `VecEnv` of `spec.num_envs` slots and its actor: V, M and C (`BatchedAgent`; torch and
numpy's BLAS on one thread each) when the spec names V and M, else a random policy. A task is a
batch of `EpisodeRequest`s run by `run_episodes`; a collection task writes each episode's
shard itself (only small numbers travel back). Controller parameters are copied into the
agent's existing tensors, so worker memory stays flat; every result carries the worker's RSS.

Faults. `WorkerPool.run` hands out one task at a time per worker and watches every worker:
  - a worker that dies (crash, OOM kill, `kill -9`) is noticed through its process
    sentinel (local) or the actor's death (Ray); its task goes back to the front of the
    queue, is run by the next free worker, and a fresh worker replaces the dead one;
  - a task running longer than `timeout_s` is presumed hung: its worker is killed and
    replaced and the task re-run elsewhere;
  - a task that raises is re-run elsewhere too (the traceback is kept);
  - after `max_attempts` tries a task is given up (result None);
  - a worker that cannot start (its V/M files unreadable, the env not importable) raises
    `RealEvalError` at once with the worker's traceback, and if no worker becomes ready
    within `start_timeout_s` the call raises too.
Every such event is logged as a warning (logger "wm_fast.pool") and returned in the call's
report. Results are keyed by task, and each episode depends on its request only, so a call
with faults returns exactly what it would have without them. Nothing waits without a deadline.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import multiprocessing as mp
import os
import signal
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import RealEvalError
from .episodes import EpisodeRequest, RandomActor, run_episodes

log = logging.getLogger("wm_fast.pool")

BACKENDS = ("local", "ray", "inline")


# ----------------------------------------------------------------------------- worker side


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker builds once: a VecEnv and its actor (V+M+C from files, or a random policy)."""

    env_name: str
    env_backend: str
    max_steps: int
    num_envs: int = 1
    vae_path: str | None = None
    """V's checkpoint (None for a state env, or for a random policy)."""
    rnn_path: str | None = None
    """M's checkpoint; None: the actor is the random `policy`."""
    policy: str = "brownian"
    """Random policy of a spec without M (see rollout/policies.py)."""
    vae_bytes: bytes | None = field(default=None, repr=False)
    """The V and M files' bytes, shipped to workers that may not see the files (Ray)."""
    rnn_bytes: bytes | None = field(default=None, repr=False)

    def with_bytes(self) -> "WorkerSpec":
        read = lambda p: Path(p).read_bytes() if p is not None else None  # noqa: E731
        return dataclasses.replace(self, vae_bytes=read(self.vae_path), rnn_bytes=read(self.rnn_path))


def agent_spec(env_name: str, env_backend: str, max_steps: int, num_envs: int, vae_path: Path | str | None,
               rnn_path: Path | str) -> WorkerSpec:
    """A WorkerSpec for V+M+C with absolute paths (workers may run in another directory)."""
    return WorkerSpec(env_name, env_backend, int(max_steps), int(num_envs),
                      str(Path(vae_path).resolve()) if vae_path is not None else None, str(Path(rnn_path).resolve()))


@dataclass
class Task:
    """A batch of episodes for one worker.

    kind: "episodes" (run `episodes`; → {"episodes": [result per request]}) or "probe"
    (every env slot runs one episode of at most `probe_steps` steps, seeds from `episodes[0]`'s
    on, so the speed is that of a full batch; → {"steps"}). shards: for a
    collection task, the shard path of each episode: the worker writes it and keeps only
    the episode's numbers in the result. label: how logs name the task.
    """

    episodes: list[EpisodeRequest]
    kind: str = "episodes"
    shards: list[str] | None = None
    probe_steps: int = 0
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
    """A worker's VecEnv and actor, built once; `run(task)` runs a batch of episodes."""

    def __init__(self, spec: WorkerSpec):
        import torch
        from threadpoolctl import threadpool_limits

        self.threads_before = torch.get_num_threads()  # restored by close(): an inline worker shares our process
        torch.set_num_threads(1)
        # numpy's BLAS too (frame resizing's small matmuls): its idle threads spin, and beside torch and the env
        # processes on a loaded machine a 0.4 ms resize took 30 ms (results are the same on one thread)
        self.blas_limits = threadpool_limits(limits=1, user_api="blas")
        try:
            self._build(spec)
        except BaseException:  # an inline worker that failed to start gives the process its thread counts back
            self.close()
            raise

    def _build(self, spec: WorkerSpec) -> None:
        import tempfile

        from .. import envs

        vae_path, rnn_path = spec.vae_path, spec.rnn_path
        if spec.rnn_bytes is not None:  # files shipped to this node
            folder = Path(tempfile.mkdtemp(prefix="wm_fast_worker_"))
            rnn_path = str(folder / "rnn.pt")
            Path(rnn_path).write_bytes(spec.rnn_bytes)
            if spec.vae_bytes is not None:
                vae_path = str(folder / "vae.pt")
                Path(vae_path).write_bytes(spec.vae_bytes)
        self.spec = spec
        self.vec = envs.make_vec(spec.env_name, spec.num_envs, spec.max_steps, spec.env_backend)
        if rnn_path is None:
            self.actor: Any = RandomActor(spec.policy, spec.num_envs, self.vec.action_low, self.vec.action_high)
        else:
            from ..train_rnn import load_mdnrnn
            from .agent import BatchedAgent, state_encoder, vae_encoder

            facts = envs.facts(spec.env_name)
            encoder = vae_encoder(vae_path) if vae_path is not None else state_encoder(spec.env_name)
            self.actor = BatchedAgent(encoder, load_mdnrnn(rnn_path), facts.action_mapping, facts.controller_input,
                                      spec.num_envs, self.vec.action_low, self.vec.action_high)

    def run(self, task: Task) -> dict[str, Any]:
        t0 = time.perf_counter()
        out: dict[str, Any]
        if task.kind == "episodes":
            written: dict[int, dict[str, Any]] = {}

            def write(i: int, episode: dict[str, Any]) -> None:  # each shard as its episode ends
                written[i] = _write_shard(task.shards[i], episode, self.spec.env_name)  # type: ignore[index]

            results = run_episodes(self.vec, task.episodes, self.actor, on_episode=write if task.shards else None)
            out = {"episodes": [written.get(i, r) for i, r in enumerate(results)]}
        elif task.kind == "probe":
            first = task.episodes[0]
            requests = [dataclasses.replace(first, seed=first.seed + k, max_steps=task.probe_steps)
                        for k in range(self.vec.num_envs)]
            out = {"steps": sum(r["steps"] for r in run_episodes(self.vec, requests, self.actor))}
        else:
            raise ValueError(f"unknown task kind {task.kind!r}")
        out["seconds"] = time.perf_counter() - t0
        out["pid"] = os.getpid()
        out["rss_mb"] = rss_mb()
        return out

    def close(self) -> None:
        with contextlib.suppress(Exception):  # (a worker that failed to start may have no VecEnv)
            self.vec.close()
        self._restore_threads()

    def _restore_threads(self) -> None:
        import torch

        self.blas_limits.restore_original_limits()  # first: it may also reset torch's OpenMP to the worker's 1
        torch.set_num_threads(self.threads_before)


def _write_shard(path: str, episode: dict[str, Any], env_name: str) -> dict[str, Any]:
    """Write a kept episode (shards.py) and return its numbers without the arrays: an episode shard
    of frames, or for a state env a latent file straight away (z = the normalized state, tiny logvar)."""
    from ..shards import save_episode, save_latents

    obs = episode["observations"]
    if obs.ndim == 4:
        save_episode(path, frames=obs, actions=episode["actions"], rewards=episode["rewards"],
                     terminated=episode["terminated"], truncated=episode["truncated"], seed=episode["seed"])
    else:
        from ..encode import episode_dones
        from .agent import STATE_LOGVAR, state_encoder

        mu = state_encoder(env_name)(obs).numpy()
        save_latents(path, mu, np.full_like(mu, STATE_LOGVAR), episode["actions"], episode["rewards"],
                     episode_dones(len(episode["rewards"]), episode["terminated"]), episode["seed"])
    return {k: v for k, v in episode.items() if k not in ("observations", "actions", "rewards")}


def exit_on_termination_signals() -> dict[int, Any]:
    """Turn SIGTERM and SIGHUP (`kill`, `timeout`, a closed terminal) into SystemExit(128 + signal), as Ctrl-C
    is KeyboardInterrupt, so that `with` blocks and `finally` close what the process holds. ViZDoom's game
    processes ignore SIGTERM: without this, killing a collection left them running with no parent.
    Returns the handlers it replaced (for signal.signal), empty off the main thread (where it does nothing)."""
    import threading

    def exit_now(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, exit_now) for sig in (signal.SIGTERM, signal.SIGHUP)}


def _worker_init(parent_pid: int) -> None:
    """Worker start: leave Ctrl-C to the parent, close the envs on SIGTERM, and die if the parent dies (Linux)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    exit_on_termination_signals()
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: no orphan keeps writing shards
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)



def _local_worker_main(conn, spec: WorkerSpec, parent_pid: int) -> None:
    """A local worker process: build, say ready, then run tasks until None or the pipe closes."""
    _worker_init(parent_pid)  # ignore Ctrl-C (the parent handles it), die with the parent
    try:
        core = WorkerCore(spec)
    except BaseException:
        with contextlib.suppress(Exception):
            conn.send(("init_error", traceback.format_exc()))
        return
    try:
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
    finally:  # also on SystemExit from SIGTERM: the envs' own processes (ViZDoom's games) go with us
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



class _InlineBackend:
    """One worker in this process (no isolation: for one worker and for tests); runs a task on submit."""

    name = "inline"

    def __init__(self, spec: WorkerSpec):
        self.spec, self.core = spec, None
        self.events: list[tuple[str, int, Any]] = []

    def start(self, wid: int) -> None:
        try:
            self.core = self.core or WorkerCore(self.spec)
        except Exception:
            self.events.append(("init_error", wid, traceback.format_exc()))
            return
        self.events.append(("ready", wid, os.getpid()))

    def submit(self, wid: int, task: Task) -> None:
        try:
            self.events.append(("result", wid, self.core.run(task)))  # type: ignore[union-attr]
        except Exception:
            self.events.append(("error", wid, traceback.format_exc()))

    def pid(self, wid: int) -> int | None:
        return os.getpid()

    def poll(self, timeout: float) -> list[tuple[str, int, Any]]:
        events, self.events = self.events, []
        return events

    def kill(self, wid: int) -> None:
        pass

    def close(self) -> None:
        if self.core is not None:
            self.core.close()
            self.core = None


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
            raise RealEvalError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if workers <= 0 or max_attempts <= 0 or not timeout_s > 0:
            raise RealEvalError(f"need workers > 0, max_attempts > 0, timeout_s > 0; got "
                                f"{workers}, {max_attempts}, {timeout_s}")
        self.spec, self.workers, self.backend_name, self.address = spec, workers, backend, address
        self.timeout_s, self.max_attempts, self.start_timeout_s = timeout_s, max_attempts, start_timeout_s
        self.backend: _LocalBackend | _RayBackend | _InlineBackend | None = None
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
            if self.backend_name == "inline":
                self.workers = 1
            self.backend = (_LocalBackend(self.spec) if self.backend_name == "local" else
                            _InlineBackend(self.spec) if self.backend_name == "inline" else
                            _RayBackend(self.spec, self.workers, self.address))
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



def short_event(event: str) -> str:
    """A fault event in one line: its first line and, for a traceback, the exception's last line."""
    lines = [x for x in event.splitlines() if x.strip()]
    return lines[0] + (f" ... {lines[-1].strip()}" if len(lines) > 1 else "") if lines else event


def share(episodes: int, workers: int, envs_per_worker: int) -> tuple[int, int]:
    """(workers, env slots per worker) for `episodes` episodes: every worker gets some, at most
    `envs_per_worker` slots each (an episode's result depends on neither)."""
    workers = max(1, min(workers, episodes))
    return workers, max(1, min(envs_per_worker, -(-episodes // workers)))


def balanced_groups(items: list[int], workers: int, slots: int) -> list[list[int]]:
    """`items` in order, cut into tasks of at most `slots`: as few waves of `workers` tasks as that
    allows, sizes differing by at most one, so no worker is left with a short extra task at the end
    (20 episodes on 2 workers of 8 slots: 5, 5, 5, 5 rather than 8, 8, 4)."""
    if not items:
        return []
    waves = -(-len(items) // (workers * slots))
    tasks = min(len(items), waves * workers)
    size, extra = divmod(len(items), tasks)
    bounds = np.cumsum([0] + [size + (k < extra) for k in range(tasks)])
    return [items[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def run_requests(pool: WorkerPool, requests: list[EpisodeRequest], shards: list[str] | None = None,
                 label: Callable[[int], str] = lambda i: f"episode {i}",
                 on_episode: Callable[[int, dict[str, Any]], None] | None = None,
                 ) -> tuple[list[dict[str, Any] | None], dict[str, Any]]:
    """Run `requests` on `pool`, in batches of the workers' env slots (one wave each, so progress shows).

    A batch given up after the pool's attempts is tried again one episode per task, so an
    episode that always fails costs only itself. Returns (one result per request, None where
    it was given up; the pool's report, summed over both passes). `shards`: a path per
    request for collection (the worker writes each shard). `on_episode(i, result)` is called
    for each episode as its batch comes back.
    """
    n = len(requests)
    results: list[dict[str, Any] | None] = [None] * n
    report: dict[str, Any] = {}
    todo = list(range(n))
    for one_by_one in (False, True):
        groups = [[i] for i in todo] if one_by_one else balanced_groups(todo, pool.workers, pool.spec.num_envs)
        tasks = [Task([requests[i] for i in g], shards=None if shards is None else [shards[i] for i in g],
                      label=label(g[0]) if len(g) == 1 else f"{label(g[0])} .. {label(g[-1])}") for g in groups]

        def on_result(t: int, out: dict[str, Any]) -> None:
            for i, ep in zip(groups[t], out["episodes"]):
                results[i] = ep
                if on_episode is not None:
                    on_episode(i, ep)

        _, part = pool.run(tasks, on_result)
        report = _merge_reports(report, part)
        todo = [i for i in todo if results[i] is None]
        if not todo or one_by_one:
            break
        log.warning("%d episodes of given-up batches: trying them one by one", len(todo))
    return results, report


def _merge_reports(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    if not a:
        return b
    return {"summary": {k: a["summary"][k] + b["summary"][k] for k in a["summary"]},
            "events": a["events"] + b["events"], "failed": a["failed"] + b["failed"], "rss_mb": b["rss_mb"]}
