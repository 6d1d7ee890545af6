"""Shared pieces of the dream benchmarks: paper-size worlds, the pure-PyTorch baselines, FLOPs.

The baselines run the reference dream step (dream.py's `dream_reference`, one step of it written
out as a plain function a reader would write: controller, LSTM step, head, mixture sampling,
bookkeeping) in a Python loop over steps, three ways:
  torch_eager    the function as is
  torch_compile  torch.compile(step)  (one compile per batch shape, excluded from the timing)
  torchscript    torch.jit.script(step)
`check_step_matches_reference` proves the step function is the reference's step.
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
import time
import warnings
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from wm_fast.controller import input_size, n_params
from wm_fast.dream import DreamNoise, DreamOptions, dream_reference
from wm_fast.mdnrnn import MDNRNN

# Paper sizes (CarRacing): z 32, LSTM 256, K 5, 3 actions, per-dimension mixture weights.
PAPER = dict(z_dim=32, action_dim=3, hidden=256, n_gaussians=5, layout="per_dim")
BATCHES = {1: (1, 1), 64: (4, 16), 1024: (64, 16)}  # batch -> (P candidates, R rollouts)
IMPLS = ("torch_eager", "torch_compile", "torchscript", "engine_cpu", "engine_cuda")


@dataclass
class World:
    model: MDNRNN
    params: torch.Tensor  # (P, n)
    init_mu: torch.Tensor
    init_logvar: torch.Tensor
    rollouts: int


def make_world(batch: int, seed: int = 0, never_done: bool = True, device: str = "cpu", **sizes) -> World:
    """A paper-size M with random weights, a pool of 1000 start latents, P controllers, on `device`.

    never_done: push the done logit far negative so every dream runs all its steps (steps/s
    then counts B*T steps for every implementation; the engine would otherwise gain from
    dropping finished rollouts).
    """
    s = {**PAPER, **sizes}
    torch.manual_seed(seed)
    model = MDNRNN(s["z_dim"], s["action_dim"], s["hidden"], s["n_gaussians"], s["layout"]).eval()
    if never_done:
        with torch.no_grad():
            model.head.bias[-1] = -30.0
    p, r = BATCHES.get(batch, (1, batch))
    n = n_params(input_size(s["z_dim"], s["hidden"]), s["action_dim"])
    params = torch.randn(p, n) * 0.1
    init_mu, init_logvar = torch.randn(1000, s["z_dim"]), torch.randn(1000, s["z_dim"]) - 2.0
    return World(model.to(device), params.to(device), init_mu.to(device), init_logvar.to(device), r)


# ------------------------------------------------------------------------------------------
# The reference step as a plain function (TorchScript- and torch.compile-friendly)


def reference_step(z: torch.Tensor, h: torch.Tensor, c: torch.Tensor, alive: torch.Tensor, returns: torch.Tensor,
                   lengths: torch.Tensor, ctrl_w: torch.Tensor, ctrl_b: torch.Tensor, w_ih: torch.Tensor,
                   w_hh: torch.Tensor, b_ih: torch.Tensor, b_hh: torch.Tensor, head_w: torch.Tensor,
                   head_b: torch.Tensor, u: torch.Tensor, eps: torch.Tensor, temperature: float,
                   done_threshold: float, n_gaussians: int):
    """One dream step for B = P*R rollouts, CarRacing mapping, [z, h] input, per_dim mixture.

    z (B, Z), h and c (B, H), alive (B,) bool, returns (B,), lengths (B,) int64,
    ctrl_w (P, A, Z+H), ctrl_b (P, A), u and eps (B, Z). Returns the new (z, h, c, alive, returns, lengths).
    """
    p = ctrl_w.shape[0]
    b, zd = z.shape
    k = n_gaussians
    # C: a = map(W [z, h] + b)
    x = torch.cat([z, h], dim=-1).reshape(p, b // p, -1)
    raw = torch.baddbmm(ctrl_b.unsqueeze(1), x, ctrl_w.transpose(1, 2)).reshape(b, -1)
    action = torch.cat([torch.tanh(raw[:, :1]), torch.sigmoid(raw[:, 1:3])], dim=-1)
    # M: LSTM step
    gates = torch.cat([z, action], dim=-1) @ w_ih.t() + b_ih + h @ w_hh.t() + b_hh
    i, f, g, o = gates.chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    out = h @ head_w.t() + head_b
    kz = k * zd
    logit_pi = out[:, :kz].reshape(b, k, zd)
    mu = out[:, kz:2 * kz].reshape(b, k, zd)
    logsigma = out[:, 2 * kz:3 * kz].reshape(b, k, zd)
    reward = out[:, -2]
    done = torch.sigmoid(out[:, -1]) > done_threshold
    returns = returns + torch.where(alive, reward, torch.zeros_like(reward))
    lengths = lengths + alive.to(torch.int64)
    alive = alive & ~done
    # next z from the mixture at temperature tau (sample_mdn's convention)
    log_pi = F.log_softmax(logit_pi / temperature, dim=1)
    sigma = torch.exp(logsigma) * math.sqrt(temperature)
    cdf = torch.cumsum(torch.exp(log_pi), dim=1)
    idx = (cdf <= u.unsqueeze(1)).sum(1).clamp(max=k - 1).unsqueeze(1)
    z = mu.gather(1, idx).squeeze(1) + sigma.gather(1, idx).squeeze(1) * eps
    return z, h, c, alive, returns, lengths


def step_args(world: World):
    m, lstm = world.model, world.model.lstm
    n_in = input_size(m.z_dim, m.hidden)
    a = m.action_dim
    w = world.params[:, : a * n_in].reshape(-1, a, n_in).contiguous()
    bias = world.params[:, a * n_in:].contiguous()
    weights = tuple(t.detach().contiguous() for t in (lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0,
                                                        lstm.bias_hh_l0, m.head.weight, m.head.bias))
    return (w, bias, *weights)


StepFn = Callable[..., tuple]


@torch.no_grad()
def run_loop(step: StepFn, world: World, opts: DreamOptions, noise: DreamNoise | None = None) -> tuple:
    """The Python loop over steps around a step function (noise drawn per step unless given).

    Runs on the world's device; on CUDA it waits for the GPU before returning.
    """
    m = world.model
    p, r, zd = world.params.shape[0], world.rollouts, m.z_dim
    b = p * r
    dev = world.init_mu.device
    if noise is None:
        idx = torch.randint(world.init_mu.shape[0], (b,), device=dev)
        init_eps = torch.randn(b, zd, device=dev)
    else:
        idx, init_eps = noise.init_index.reshape(b), noise.init_eps.reshape(b, zd)
    z = world.init_mu[idx] + torch.exp(0.5 * world.init_logvar[idx]) * init_eps
    h = torch.zeros(b, m.hidden, device=dev)
    c = torch.zeros(b, m.hidden, device=dev)
    alive = torch.ones(b, dtype=torch.bool, device=dev)
    returns = torch.zeros(b, device=dev)
    lengths = torch.zeros(b, dtype=torch.int64, device=dev)
    args = step_args(world)
    for t in range(opts.steps):
        if noise is None:
            u, eps = torch.rand(b, zd, device=dev), torch.randn(b, zd, device=dev)
        else:
            u, eps = noise.u[t].reshape(b, zd), noise.eps[t].reshape(b, zd)
        z, h, c, alive, returns, lengths = step(z, h, c, alive, returns, lengths, *args, u, eps,
                                                float(opts.temperature), float(opts.done_threshold),
                                                m.n_gaussians)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return returns.reshape(p, r), lengths.reshape(p, r)


def make_step(impl: str) -> StepFn:
    if impl == "torch_eager":
        return reference_step
    if impl == "torch_compile":
        return torch.compile(reference_step, dynamic=False)
    if impl == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.script(reference_step)
    raise ValueError(impl)


def check_step_matches_reference(impl: str = "torch_eager", steps: int = 12) -> None:
    """The step function reproduces dream_reference with the same noise (small paper-shaped world)."""
    from wm_fast.dream import draw_noise

    world = make_world(8, hidden=16, z_dim=4, never_done=False)
    opts = DreamOptions(steps=steps, rollouts=world.rollouts, temperature=1.15, seed=1)
    noise = draw_noise(world.params.shape[0], opts, world.init_mu.shape[0], world.model.z_dim)
    ref = dream_reference(world.model, world.params, world.init_mu, world.init_logvar, opts, noise)
    ret, length = run_loop(make_step(impl), world, opts, noise)
    torch.testing.assert_close(ret, ref.returns, rtol=1e-5, atol=1e-5)
    assert torch.equal(length, ref.lengths)


# ------------------------------------------------------------------------------------------
# Engine runners


def run_engine(world: World, opts: DreamOptions, backend: str) -> tuple:
    from wm_fast.engine import dream_engine

    if backend == "cuda":
        torch.cuda.synchronize()
    res = dream_engine(world.model, world.params, world.init_mu, world.init_logvar, opts, backend)
    if backend == "cuda":
        torch.cuda.synchronize()
    return res.returns, res.lengths


# ------------------------------------------------------------------------------------------
# FLOPs and sgemm


def ref_step_flops(z: int = 32, a: int = 3, hidden: int = 256, k: int = 5, layout: str = "per_dim") -> dict:
    """FLOPs of one reference dream step for one rollout, counted from the reference's ops.

    A multiply-add counts 2, any other elementwise op (add, compare, exp, tanh, ...) 1; the
    reference computes every mixture component's mu and sigma (the engine computes only the
    sampled one's).
    """
    n_in, d4 = z + hidden, 4 * hidden
    kz = k * z
    d = (k if layout == "shared" else kz) + 2 * kz + 2
    items = {
        "controller": 2 * n_in * a + a + 3 * a,           # W x + b, tanh / sigmoid
        "lstm_gates": 2 * (z + a) * d4 + 2 * hidden * d4 + 3 * d4,  # two GEMVs, two bias adds, sum
        "lstm_cell": 9 * hidden,                          # 3 sigmoid, 2 tanh, 3 mul, 1 add
        "head": 2 * hidden * d + d,
        "mixture": 7 * (k if layout == "shared" else kz) + 3 * kz + 3 * z,  # /tau, log_softmax, exp, cumsum,
        # compare+count; exp(logsigma)*sqrt(tau); mu + sigma*eps
        "bookkeeping": 6,                                 # sigmoid(done) > thr, returns, lengths, alive
    }
    return {"total": sum(items.values()), **items}


def sgemm_gflops(m: int = 1024, k: int = 32 + 3 + 256, n: int = 4 * 256, seconds: float = 1.0,
                 device: str = "cpu") -> float:
    """torch.mm GFLOP/s at the LSTM gate shape: (B=1024, Z+A+H) x (Z+A+H, 4H), best of repeats.

    On CUDA, full fp32 (TF32 tensor cores off, torch's default for matmul).
    """
    a, b = torch.randn(m, k, device=device), torch.randn(k, n, device=device)
    c = torch.empty(m, n, device=device)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    for _ in range(5):
        torch.mm(a, b, out=c)
    sync()
    best = math.inf
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        for _ in range(10):
            torch.mm(a, b, out=c)
        sync()
        best = min(best, (time.perf_counter() - t0) / 10)
    return 2.0 * m * k * n / best / 1e9


class OtherLoad:
    """CPU time that other processes used while a block ran, in cores (0 = the machine was ours).

    System busy time from /proc/stat minus this process's CPU time (user + system, all threads).
    """

    def __enter__(self):
        self._t0, self._busy0, self._own0 = time.perf_counter(), self._system_busy(), self._own()
        return self

    def __exit__(self, *exc):
        dt = time.perf_counter() - self._t0
        busy, own = self._system_busy() - self._busy0, self._own() - self._own0
        self.cores = max(0.0, (busy - own) / dt) if dt > 0 and busy >= 0 else float("nan")
        return False

    @staticmethod
    def _own() -> float:
        t = os.times()
        return t.user + t.system

    @staticmethod
    def _system_busy() -> float:
        try:
            with open("/proc/stat") as fh:
                f = [int(x) for x in fh.readline().split()[1:]]
        except OSError:
            return float("nan")
        idle = f[3] + (f[4] if len(f) > 4 else 0)
        return (sum(f[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    desc = f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        desc += f"; GPU: {props.name} ({props.multi_processor_count} SMs, CUDA {torch.version.cuda})"
    return desc


def git_commit() -> str:
    """Short HEAD commit, with "-dirty" when the engine's sources differ from it.

    WM_FAST_COMMIT overrides it where the tree has no .git (a copy sent to a GPU machine).
    """
    if os.environ.get("WM_FAST_COMMIT"):
        return os.environ["WM_FAST_COMMIT"]
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository root
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=True, cwd=here).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--", "csrc", "cmake", "CMakeLists.txt",
                                 "python/wm_fast", "benchmarks"], capture_output=True, text=True, check=True,
                                cwd=here).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if status else "")
