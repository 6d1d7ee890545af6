"""Shared pieces of the dream benchmarks: paper-size worlds, the pure-PyTorch baselines, FLOPs.

Two paper shapes (`SIZES`): CarRacing (z 32, 3 actions, LSTM 256, controller on [z, h], carracing
mapping, M's reward) and DoomTakeCover (z 64, 1 action, LSTM 512, controller on [z, c, h],
threshold mapping, +1 per step alive); both K 5 with per-dimension mixture weights.

The baselines run the reference dream step (dream.py's `dream_reference`, one step of it written
out as a plain function a reader would write: controller, LSTM step, head, mixture sampling,
bookkeeping) in a Python loop over steps, three ways:
  torch_eager    the function as is
  torch_compile  torch.compile(step)  (one compile per batch shape, excluded from the timing)
  torchscript    torch.jit.script(step)
`check_step_matches_reference` proves the step function is the reference's step.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from wm_fast.controller import input_size, n_params, output_size
from wm_fast.dream import DreamNoise, DreamOptions, dream_reference
from wm_fast.mdnrnn import MDNRNN
from wm_fast.storage import save_checkpoint
from wm_fast.vae import ConvVAE


@dataclass(frozen=True)
class Sizes:
    """A paper world's shape: M's sizes and the dream options the controller and returns depend on."""

    name: str              # key in SIZES ("carracing", "doom")
    title: str             # the environment, for reports
    z_dim: int             # Z
    action_dim: int        # A, M's action input
    hidden: int            # H, LSTM units
    n_gaussians: int       # K
    layout: str            # mixture weights: "per_dim" or "shared"
    action_mapping: str    # DreamOptions.action_mapping: "carracing" (3 outputs) or "threshold" (1 output)
    controller_input: str  # DreamOptions.controller_input: "zh" ([z, h]) or "zch" ([z, c, h])
    reward_source: str     # DreamOptions.reward_source: "model" (M's reward head) or "alive" (+1 per step)

    def __post_init__(self) -> None:
        if self.action_mapping not in ("carracing", "threshold"):
            raise ValueError(f"the baselines implement the carracing and threshold mappings, "
                             f"got {self.action_mapping!r}")
        if self.controller_input not in ("zh", "zch"):
            raise ValueError(f"controller_input must be 'zh' or 'zch', got {self.controller_input!r}")
        if self.reward_source not in ("model", "alive"):
            raise ValueError(f"reward_source must be 'model' or 'alive', got {self.reward_source!r}")

    @property
    def n_in(self) -> int:
        """Controller inputs: Z + H ([z, h]) or Z + 2H ([z, c, h])."""
        return input_size(self.z_dim, self.hidden, self.controller_input)  # type: ignore[arg-type]

    @property
    def n_out(self) -> int:
        """Controller outputs: A for carracing, 1 for threshold."""
        return output_size(self.action_mapping, self.action_dim)  # type: ignore[arg-type]

    @property
    def n_params(self) -> int:
        """Parameters of one controller: n_out * n_in + n_out."""
        return n_params(self.n_in, self.n_out)

    def gate_shape(self, batch: int = 1024) -> tuple[int, int, int]:
        """(M, K, N) of the LSTM input-and-recurrent gate GEMM: (batch, Z + A + H) x (Z + A + H, 4H)."""
        return batch, self.z_dim + self.action_dim + self.hidden, 4 * self.hidden

    def short(self) -> str:
        """M's sizes only, e.g. "z 32, LSTM 256, K 5, per_dim"."""
        return f"z {self.z_dim}, LSTM {self.hidden}, K {self.n_gaussians}, {self.layout}"

    def describe(self) -> str:
        """Every size and option, e.g. "z 64, action_dim 1, LSTM 512, K 5, per_dim, controller on
        [z, c, h] (1088 inputs, 1 output), threshold action mapping, alive reward"."""
        x = "[z, h]" if self.controller_input == "zh" else "[z, c, h]"
        outs = f"{self.n_out} output" + ("s" if self.n_out != 1 else "")
        return (f"z {self.z_dim}, action_dim {self.action_dim}, LSTM {self.hidden}, K {self.n_gaussians}, "
                f"{self.layout}, controller on {x} ({self.n_in} inputs, {outs}), {self.action_mapping} action "
                f"mapping, {self.reward_source} reward")


CARRACING = Sizes("carracing", "CarRacing", z_dim=32, action_dim=3, hidden=256, n_gaussians=5, layout="per_dim",
                  action_mapping="carracing", controller_input="zh", reward_source="model")
DOOM = Sizes("doom", "DoomTakeCover", z_dim=64, action_dim=1, hidden=512, n_gaussians=5, layout="per_dim",
             action_mapping="threshold", controller_input="zch", reward_source="alive")
SIZES = {s.name: s for s in (CARRACING, DOOM)}
BATCHES = {1: (1, 1), 64: (4, 16), 1024: (64, 16)}  # batch -> (P candidates, R rollouts)
IMPLS = ("torch_eager", "torch_compile", "torchscript", "engine_cpu", "engine_cuda")


@dataclass
class World:
    model: MDNRNN
    params: torch.Tensor       # (P, n) flat controllers, n = sizes.n_params
    init_mu: torch.Tensor      # (N, Z) start pool
    init_logvar: torch.Tensor  # (N, Z)
    rollouts: int              # R
    sizes: Sizes = CARRACING

    def options(self, steps: int, **kw: Any) -> DreamOptions:
        """DreamOptions for this world: its rollouts and its mapping, controller input and reward source."""
        return DreamOptions(steps=steps, rollouts=self.rollouts, action_mapping=self.sizes.action_mapping,
                            controller_input=self.sizes.controller_input,
                            reward_source=self.sizes.reward_source, **kw)


def make_world(batch: int, seed: int = 0, never_done: bool = True, device: str = "cpu",
               sizes: Sizes = CARRACING, **overrides: Any) -> World:
    """A paper-size M with random weights, a pool of 1000 start latents, P controllers, on `device`.

    sizes: the paper shape (CARRACING or DOOM); overrides: Sizes fields to change (z_dim=4,
    hidden=16, reward_source="model", ...). batch = P x R as in BATCHES (other batches: P = 1).
    never_done: push the done logit far negative so every dream runs all its steps (steps/s
    then counts B*T steps for every implementation; the engine would otherwise gain from
    dropping finished rollouts).
    """
    s = dataclasses.replace(sizes, **overrides) if overrides else sizes
    torch.manual_seed(seed)
    model = MDNRNN(s.z_dim, s.action_dim, s.hidden, s.n_gaussians, s.layout).eval()
    if never_done:
        with torch.no_grad():
            model.head.bias[-1] = -30.0
    p, r = BATCHES.get(batch, (1, batch))
    params = torch.randn(p, s.n_params) * 0.1
    init_mu, init_logvar = torch.randn(1000, s.z_dim), torch.randn(1000, s.z_dim) - 2.0
    return World(model.to(device), params.to(device), init_mu.to(device), init_logvar.to(device), r, s)


# ------------------------------------------------------------------------------------------
# The reference step as a plain function (TorchScript- and torch.compile-friendly)


def reference_step(z: torch.Tensor, h: torch.Tensor, c: torch.Tensor, alive: torch.Tensor, returns: torch.Tensor,
                   lengths: torch.Tensor, ctrl_w: torch.Tensor, ctrl_b: torch.Tensor, w_ih: torch.Tensor,
                   w_hh: torch.Tensor, b_ih: torch.Tensor, b_hh: torch.Tensor, head_w: torch.Tensor,
                   head_b: torch.Tensor, u: torch.Tensor, eps: torch.Tensor, temperature: float,
                   done_threshold: float, n_gaussians: int, controller_input: str = "zh",
                   action_mapping: str = "carracing", reward_source: str = "model"):
    """One dream step for B = P*R rollouts, per_dim mixture.

    z (B, Z), h and c (B, H), alive (B,) bool, returns (B,), lengths (B,) int64,
    ctrl_w (P, O, I), ctrl_b (P, O) with I = Z+H ("zh": C reads [z, h]) or Z+2H ("zch": [z, c, h])
    and O = 3 ("carracing": [tanh, sigmoid, sigmoid]) or 1 ("threshold": -1 / 0 / +1 at tanh = -+1/3),
    w_ih (4H, Z+A), w_hh (4H, H), b_ih and b_hh (4H,), head_w (D, H), head_b (D,), u and eps (B, Z).
    reward_source "model" adds M's reward, "alive" adds 1 per step alive.
    Returns the new (z, h, c, alive, returns, lengths).
    """
    p = ctrl_w.shape[0]
    b, zd = z.shape
    k = n_gaussians
    # C: a = map(W x + b), x = [z, h] or [z, c, h] (c and h of step t, before M's update)
    if controller_input == "zch":
        x = torch.cat([z, c, h], dim=-1).reshape(p, b // p, -1)
    else:
        x = torch.cat([z, h], dim=-1).reshape(p, b // p, -1)
    raw = torch.baddbmm(ctrl_b.unsqueeze(1), x, ctrl_w.transpose(1, 2)).reshape(b, -1)
    if action_mapping == "carracing":
        action = torch.cat([torch.tanh(raw[:, :1]), torch.sigmoid(raw[:, 1:3])], dim=-1)
    elif action_mapping == "threshold":
        a = torch.tanh(raw[:, :1])
        action = (a > 1 / 3).to(raw.dtype) - (a < -1 / 3).to(raw.dtype)
    else:
        raise ValueError("action_mapping must be carracing or threshold")
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
    if reward_source == "alive":
        reward = torch.ones_like(returns)
    else:
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


def step_args(world: World) -> tuple[torch.Tensor, ...]:
    """The step's weight arguments: ctrl_w (P, O, I), ctrl_b (P, O), w_ih, w_hh, b_ih, b_hh, head_w, head_b."""
    m, lstm = world.model, world.model.lstm
    n_in, n_out = world.sizes.n_in, world.sizes.n_out
    w = world.params[:, : n_out * n_in].reshape(-1, n_out, n_in).contiguous()
    bias = world.params[:, n_out * n_in:].contiguous()
    weights = tuple(t.detach().contiguous() for t in (lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0,
                                                        lstm.bias_hh_l0, m.head.weight, m.head.bias))
    return (w, bias, *weights)


StepFn = Callable[..., tuple]


def _check_options(world: World, opts: DreamOptions) -> None:
    """opts must dream the world's controller (its params are shaped for the world's mapping and input)."""
    s = world.sizes
    want = (s.action_mapping, s.controller_input, s.reward_source)
    got = (opts.action_mapping, opts.controller_input, opts.reward_source)
    if got != want:
        raise ValueError(f"opts (action_mapping, controller_input, reward_source) = {got}, but the world is "
                         f"{want}; build them with world.options(steps)")


@torch.no_grad()
def run_loop(step: StepFn, world: World, opts: DreamOptions, noise: DreamNoise | None = None) -> tuple:
    """The Python loop over steps around a step function (noise drawn per step unless given).

    opts: the world's options (world.options(steps, ...)); opts.rollouts is taken from the world.
    Returns (returns (P, R), lengths (P, R)). Runs on the world's device; on CUDA it waits for the
    GPU before returning.
    """
    _check_options(world, opts)
    m, s = world.model, world.sizes
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
                                                m.n_gaussians, s.controller_input, s.action_mapping,
                                                s.reward_source)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return returns.reshape(p, r), lengths.reshape(p, r)


def make_step(impl: str) -> StepFn:
    if impl == "torch_eager":
        return reference_step
    if impl == "torch_compile":
        # One compiled entry per (batch shape, sizes, options) of the same function: a report of both
        # paper shapes needs more than dynamo's default 8 before it would fall back to eager.
        import torch._dynamo.config as dynamo_config

        dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 64)
        return torch.compile(reference_step, dynamic=False)
    if impl == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.script(reference_step)
    raise ValueError(impl)


def check_step_matches_reference(impl: str = "torch_eager", steps: int = 12, sizes: Sizes = CARRACING,
                                 done_bias: float | None = None, **overrides: Any) -> None:
    """The step function reproduces dream_reference with the same noise.

    On a small world of the shape of `sizes` (z 4, LSTM 16, 8 rollouts; its mapping, controller
    input and reward source; overrides change any Sizes field). The done logits are left as drawn
    (no dream ends within 12 steps), or their bias set to done_bias (-0.1 ends some early).
    """
    from wm_fast.dream import draw_noise

    world = make_world(8, never_done=False, sizes=sizes, **{"hidden": 16, "z_dim": 4, **overrides})
    if done_bias is not None:
        with torch.no_grad():
            world.model.head.bias[-1] = done_bias
    opts = world.options(steps, temperature=1.15, seed=1)
    noise = draw_noise(world.params.shape[0], opts, world.init_mu.shape[0], world.model.z_dim)
    ref = dream_reference(world.model, world.params, world.init_mu, world.init_logvar, opts, noise)
    ret, length = run_loop(make_step(impl), world, opts, noise)
    torch.testing.assert_close(ret, ref.returns, rtol=1e-5, atol=1e-5)
    assert torch.equal(length, ref.lengths)


def check_doom_step_matches_reference(impl: str = "torch_eager", steps: int = 12) -> None:
    """`check_step_matches_reference` at small Doom-like sizes (z 4, LSTM 16, one action, C on
    [z, c, h], threshold mapping): with the alive reward and some dreams ending early (the
    bookkeeping: returns = lengths), and with M's reward (returns then follow the whole z, h, c
    and action trajectory), with and without early ends.
    """
    check_step_matches_reference(impl, steps, DOOM, done_bias=-0.1)
    check_step_matches_reference(impl, steps, DOOM, reward_source="model")
    check_step_matches_reference(impl, steps, DOOM, done_bias=-0.1, reward_source="model")


def check_sizes_step_matches_reference(impl: str, sizes: Sizes) -> None:
    """The check for a paper shape: CarRacing's as it always was, Doom's with its variants."""
    if sizes.name == "doom":
        check_doom_step_matches_reference(impl)
    else:
        check_step_matches_reference(impl, sizes=sizes)


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


def ref_step_flops(sizes: Sizes = CARRACING) -> dict:
    """FLOPs of one reference dream step for one rollout, counted from the reference's ops.

    A multiply-add counts 2, any other elementwise op (add, compare, exp, tanh, ...) 1; the
    reference computes every mixture component's mu and sigma (the engine computes only the
    sampled one's) and M's reward output even when the return counts steps alive.
    """
    z, a, hidden, k, layout = sizes.z_dim, sizes.action_dim, sizes.hidden, sizes.n_gaussians, sizes.layout
    n_in, n_out, d4 = sizes.n_in, sizes.n_out, 4 * hidden
    kz = k * z
    d = (k if layout == "shared" else kz) + 2 * kz + 2
    mapping = 3 * n_out if sizes.action_mapping == "carracing" else 3 * n_out + 3  # threshold: + 2 compares, sub
    items = {
        "controller": 2 * n_in * n_out + n_out + mapping,  # W x + b, tanh / sigmoid (/ thresholds)
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


def write_report(lines: list[str], out: dict[str, Any], json_path: os.PathLike | None,
                 md_path: os.PathLike | None) -> None:
    """Print a benchmark's markdown (`lines`) and write it to `md_path` and `out` to `json_path` when given."""
    text = "\n".join(lines) + "\n"
    print(text)
    if json_path:
        Path(json_path).write_text(json.dumps(out, indent=2) + "\n")
    if md_path:
        Path(md_path).write_text(text)


def untrained_models(folder: os.PathLike | str, z_dim: int, action_dim: int, hidden: int) -> tuple[Path, Path]:
    """Untrained V and M checkpoints (seed 0; per-dimension mixtures of 5) in `folder`: (vae.pt, rnn.pt) paths.
    Their speed does not depend on their weights."""
    folder = Path(folder)
    torch.manual_seed(0)
    save_checkpoint(folder / "vae.pt", {"model": ConvVAE(z_dim).state_dict(), "z_dim": z_dim})
    arch = dict(z_dim=z_dim, action_dim=action_dim, hidden=hidden, n_gaussians=5, layout="per_dim")
    save_checkpoint(folder / "rnn.pt", {"model": MDNRNN(**arch).state_dict(), **arch})
    return folder / "vae.pt", folder / "rnn.pt"
