"""M (MDN-RNN): shapes, step == forward, NLL against torch.distributions, sampling at
temperature, the step convention, training with checkpoints and resume, bad checkpoints."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import distributions as D

from wm_fast.config import RNNConfig
from wm_fast.mdnrnn import MDNOutput, MDNRNN, dropout_masks, head_size, mdn_nll, mixture_params, sample_mdn
from wm_fast.sequences import LatentEpisodes, SequenceSampler, sample_z
from wm_fast.shards import save_latents
from wm_fast.storage import CheckpointError, load_checkpoint, save_checkpoint
from wm_fast.train_rnn import load_mdnrnn, rnn_losses, train_rnn

LAYOUTS = ("shared", "per_dim")


# ----------------------------------------------------------------------------- model


@pytest.mark.parametrize("layout", LAYOUTS)
def test_head_layout_and_shapes(layout):
    Z, A, H, K, T, B = 3, 2, 8, 4, 5, 6
    m = MDNRNN(Z, A, hidden=H, n_gaussians=K, layout=layout)
    assert [n for n, _ in m.named_children()] == ["lstm", "head"]
    assert m.lstm.input_size == Z + A and m.lstm.hidden_size == H and m.lstm.num_layers == 1
    expected_d = (K if layout == "shared" else K * Z) + 2 * K * Z + 2
    assert m.head.out_features == expected_d == head_size(Z, K, layout)

    out, (h, c) = m(torch.randn(T, B, Z), torch.randn(T, B, A))
    pi_shape = (T, B, K) if layout == "shared" else (T, B, K, Z)
    assert out.logit_pi.shape == pi_shape
    assert out.mu.shape == out.logsigma.shape == (T, B, K, Z)
    assert out.reward.shape == out.done_logit.shape == (T, B)
    assert h.shape == c.shape == (B, H)

    o1, (h1, c1) = m.step(torch.randn(B, Z), torch.randn(B, A), m.initial_state(B))
    assert o1.logit_pi.shape == pi_shape[1:]
    assert o1.mu.shape == (B, K, Z) and o1.reward.shape == (B,) and o1.done_logit.shape == (B,)
    assert h1.shape == c1.shape == (B, H)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_unpack_index_convention(layout):
    """Row k*Z + d of a K*Z block is component k, dim d; blocks in the documented order."""
    Z, K = 3, 2
    m = MDNRNN(Z, 1, hidden=4, n_gaussians=K, layout=layout)
    raw = torch.arange(float(m.out_dim))
    o = m.unpack(raw)
    npi = K if layout == "shared" else K * Z
    if layout == "shared":
        assert o.logit_pi.tolist() == list(range(K))
    else:
        assert o.logit_pi[1, 2].item() == 1 * Z + 2
    assert o.mu[1, 2].item() == npi + 1 * Z + 2
    assert o.logsigma[0, 1].item() == npi + K * Z + 1
    assert o.reward.item() == m.out_dim - 2 and o.done_logit.item() == m.out_dim - 1


def sequence_world(layout: str):
    """A small M (Z 4, A 3, H 16, K 3), inputs z (6, 5, 4), a (6, 5, 3) and a random state ((5, 16) each)."""
    torch.manual_seed(0)
    m = MDNRNN(4, 3, hidden=16, n_gaussians=3, layout=layout)
    z, a = torch.randn(6, 5, 4), torch.randn(6, 5, 3)
    return m, z, a, (torch.randn(5, 16), torch.randn(5, 16))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_step_matches_forward(layout):
    m, z, a, state0 = sequence_world(layout)
    (T, B, Z), H = z.shape, m.hidden
    # T = 1
    of, sf = m(z[:1], a[:1], state0)
    os_, ss = m.step(z[0], a[0], state0)
    for x, y in zip(of, os_):
        torch.testing.assert_close(x[0], y, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sf[0], ss[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sf[1], ss[1], rtol=1e-5, atol=1e-6)
    # several steps from the zero state
    of, (hf, cf) = m(z, a)
    state = None
    for t in range(T):
        os_, state = m.step(z[t], a[t], state)
        for x, y in zip(of, os_):
            torch.testing.assert_close(x[t], y, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(state[0], hf, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(state[1], cf, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- dropout


def test_dropout_masks_rate_scale_and_generator():
    mz, mh = dropout_masks(4000, 5, 7, 0.2, generator=torch.Generator().manual_seed(0))
    assert mz.shape == (4000, 5) and mh.shape == (4000, 7) and mz.dtype == torch.float32
    values = torch.cat([mz.flatten(), mh.flatten()])
    assert set(values.unique().tolist()) == {0.0, torch.tensor(1 / 0.8).item()}
    assert abs((values > 0).float().mean().item() - 0.8) < 0.01  # 48k draws: sd 0.002
    again = dropout_masks(4000, 5, 7, 0.2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again[0], mz) and torch.equal(again[1], mh)
    assert torch.equal(dropout_masks(3, 5, 7, 0.0)[1], torch.ones(3, 7))
    with pytest.raises(ValueError, match="dropout"):
        dropout_masks(3, 5, 7, 1.0)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_forward_with_masks_is_the_step_by_step_cell(layout):
    m, z, a, state0 = sequence_world(layout)
    (T, B, Z), H = z.shape, m.hidden
    mz, mh = dropout_masks(B, Z, H, 0.4)
    of, (hf, cf) = m(z, a, state0, mask_z=mz, mask_h=mh)
    state = state0
    for t in range(T):  # the same masks at every step
        os_, state = m.step(z[t], a[t], state, mask_z=mz, mask_h=mh)
        for x, y in zip(of, os_):
            torch.testing.assert_close(x[t], y, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(state[0], hf, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(state[1], cf, rtol=1e-5, atol=1e-5)
    fused, _ = m(z, a, state0)  # no masks: the fused nn.LSTM
    ones, _ = m(z, a, state0, mask_z=torch.ones(B, Z), mask_h=torch.ones(B, H))
    torch.testing.assert_close(ones.mu, fused.mu, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(of.mu, fused.mu, atol=1e-3)
    of.mu.sum().backward()  # the step-by-step path trains the same parameters
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.lstm.parameters())
    with pytest.raises(ValueError, match="mask_h"):
        m(z, a, mask_h=torch.ones(B, H + 1))


def test_masks_never_touch_the_actions():
    torch.manual_seed(0)
    m = MDNRNN(4, 3, hidden=8, n_gaussians=3)
    z, a, h, c = torch.randn(5, 4), torch.randn(5, 3), torch.randn(5, 8), torch.randn(5, 8)
    dropped = (torch.zeros(5, 4), torch.zeros(5, 8))
    out, (h1, c1) = m.step(z, a, (h, c), *dropped)
    other, (h2, c2) = m.step(torch.randn_like(z), a, (torch.randn_like(h), c), *dropped)
    assert torch.equal(h1, h2) and torch.equal(c1, c2) and torch.equal(out.mu, other.mu)  # z and h dropped
    _, (h3, _) = m.step(z, a + 1.0, (h, c), *dropped)
    assert not torch.allclose(h3, h1)  # the action still gets through


# ----------------------------------------------------------------------------- NLL


def _reference_nll(logit_pi, mu, logsigma, z, layout):
    sigma = logsigma.exp()
    if layout == "shared":
        mix = D.MixtureSameFamily(D.Categorical(logits=logit_pi), D.Independent(D.Normal(mu, sigma), 1))
        return -mix.log_prob(z)
    # per dim: move Z before K so the batch is (..., Z) and components are the last axis
    mix = D.MixtureSameFamily(D.Categorical(logits=logit_pi.transpose(-1, -2)),
                              D.Normal(mu.transpose(-1, -2), sigma.transpose(-1, -2)))
    return -mix.log_prob(z).sum(-1)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_mdn_nll_matches_torch_distributions(layout):
    g = torch.Generator().manual_seed(1)
    S, B, K, Z = 3, 4, 5, 6
    mu = torch.randn(S, B, K, Z, generator=g, dtype=torch.float64)
    logsigma = 0.5 * torch.randn(S, B, K, Z, generator=g, dtype=torch.float64)
    logit = torch.randn((S, B, K) if layout == "shared" else (S, B, K, Z), generator=g, dtype=torch.float64)
    z = torch.randn(S, B, Z, generator=g, dtype=torch.float64)
    got = mdn_nll(logit, mu, logsigma, z, layout)
    assert got.shape == (S, B)
    torch.testing.assert_close(got, _reference_nll(logit, mu, logsigma, z, layout))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_mdn_nll_hand_made_and_negative(layout):
    # Two components, Z = 2, narrow Gaussians: the density at the mean is large -> NLL < 0.
    K, Z = 2, 2
    mu = torch.tensor([[[0.0, 1.0], [3.0, -2.0]]])
    logsigma = torch.full((1, K, Z), math.log(0.05))
    logit = torch.tensor([[0.0, math.log(3.0)]])  # pi = (0.25, 0.75)
    if layout == "per_dim":
        logit = logit.unsqueeze(-1).expand(1, K, Z).contiguous()
    z = torch.tensor([[0.0, 1.0]])  # at component 0's mean
    got = mdn_nll(logit, mu, logsigma, z, layout)
    ref = _reference_nll(logit.double(), mu.double(), logsigma.double(), z.double(), layout).float()
    torch.testing.assert_close(got, ref)
    # by hand: component 1 is ~30 sigmas away, negligible
    log_n0 = Z * (-math.log(0.05) - 0.5 * math.log(2 * math.pi))
    if layout == "shared":
        expected = -(math.log(0.25) + log_n0)
    else:
        expected = -Z * math.log(0.25) - log_n0
    assert got.item() == pytest.approx(expected, abs=1e-5)
    assert got.item() < 0
    # stable far from every mean (no inf/nan)
    far = mdn_nll(logit, mu, logsigma, torch.tensor([[1e3, -1e3]]), layout)
    assert torch.isfinite(far).all()


# ----------------------------------------------------------------------------- sampling


@pytest.mark.parametrize("tau", [0.5, 1.0, 1.5])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_sampling_statistics(layout, tau):
    """Component frequencies ~ softmax(logit/tau), per-component variance ~ tau*sigma^2."""
    n = 200_000
    K, Z = 2, 2
    means = torch.tensor([[-20.0, 20.0], [20.0, -20.0]])  # (K, Z): well separated
    sig = torch.tensor([[0.5, 0.8], [1.5, 1.0]])
    logit_k = torch.tensor([0.4, -0.3])
    mu = means.expand(n, K, Z)
    logsigma = sig.log().expand(n, K, Z)
    if layout == "shared":
        logit = logit_k.expand(n, K)
    else:  # different weights per dim to check that each dim uses its own
        logit = torch.stack([logit_k, -logit_k], -1).expand(n, K, Z)
    g = torch.Generator().manual_seed(123)
    z = sample_mdn((logit, mu, logsigma), tau, layout, generator=g)
    assert z.shape == (n, Z)
    comp = (z[:, 0] > 0).long()  # component 1 has mean +20 in dim 0
    if layout == "shared":
        comp_d = [comp, comp]
        assert torch.equal(comp, (z[:, 1] < 0).long())  # both dims use the same component
        p = [torch.softmax(logit_k / tau, 0)] * Z
    else:
        comp_d = [comp, (z[:, 1] < 0).long()]
        p = [torch.softmax(logit_k / tau, 0), torch.softmax(-logit_k / tau, 0)]
    for d in range(Z):
        freq1 = comp_d[d].float().mean().item()
        assert freq1 == pytest.approx(p[d][1].item(), abs=0.006)
        for k in range(K):
            sel = z[comp_d[d] == k, d]
            assert sel.mean().item() == pytest.approx(means[k, d].item(), abs=0.03)
            assert sel.var().item() == pytest.approx(tau * sig[k, d].item() ** 2, rel=0.04)


def test_mixture_params():
    logit = torch.tensor([[1.0, 2.0, 0.5]])
    logsigma = torch.zeros(1, 3, 2)
    lp, s = mixture_params(logit, logsigma, 2.0)
    torch.testing.assert_close(lp.exp(), torch.softmax(logit / 2.0, -1))
    torch.testing.assert_close(s, torch.full((1, 3, 2), math.sqrt(2.0)))
    with pytest.raises(ValueError):
        mixture_params(logit, logsigma, 0.0)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_sampling_injection_inverse_cdf(layout):
    """With u and eps given, the pick is the smallest k with u < cdf_k (clamped to K-1)."""
    g = torch.Generator().manual_seed(5)
    B, K, Z, tau = 64, 4, 3, 0.7
    mu = torch.randn(B, K, Z, generator=g)
    logsigma = 0.3 * torch.randn(B, K, Z, generator=g)
    logit = torch.randn((B, K) if layout == "shared" else (B, K, Z), generator=g)
    u = torch.rand(B, Z, generator=g)
    eps = torch.randn(B, Z, generator=g)
    log_pi, sigma = mixture_params(logit, logsigma, tau)
    cdf = torch.cumsum(log_pi.exp(), dim=-1 if layout == "shared" else -2)
    # edge cases: u exactly on a cdf entry picks the next component; u near 1 clamps to K-1
    if layout == "shared":
        u[0, 0] = cdf[0, 0]
        u[1, 0] = 0.0
        u[2, 0] = float(np.nextafter(np.float32(1.0), np.float32(0.0)))
    else:
        u[0, 1] = cdf[0, 1, 1]
        u[1, 2] = 0.0
        u[2, 0] = float(np.nextafter(np.float32(1.0), np.float32(0.0)))
    z = sample_mdn(MDNOutput(logit, mu, logsigma, torch.zeros(B), torch.zeros(B)), tau, layout, u=u, eps=eps)
    expected = torch.empty(B, Z)
    for b in range(B):
        for d in range(Z):
            uu = u[b, 0] if layout == "shared" else u[b, d]
            c = cdf[b] if layout == "shared" else cdf[b, :, d]
            k = next((j for j in range(K) if uu < c[j]), K - 1)
            expected[b, d] = mu[b, k, d] + sigma[b, k, d] * eps[b, d]
    torch.testing.assert_close(z, expected, rtol=0, atol=0)
    if layout == "shared":
        k0 = 1  # u == cdf_0 -> component 1
        assert z[0, 0].item() == pytest.approx((mu[0, k0, 0] + sigma[0, k0, 0] * eps[0, 0]).item())
    # drawing from a generator = drawing u then eps from it
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    za = sample_mdn((logit, mu, logsigma), tau, layout, generator=g1)
    uu, ee = torch.rand(B, Z, generator=g2), torch.randn(B, Z, generator=g2)
    torch.testing.assert_close(za, sample_mdn((logit, mu, logsigma), tau, layout, u=uu, eps=ee))


# ----------------------------------------------------------------------------- data / convention


def _write_episodes(folder: Path, lengths, Z=2, A=3, seed=0, fn=None):
    """Latent files whose entries encode (episode, step) so offsets can be checked."""
    rng = np.random.default_rng(seed)
    files = []
    for e, T in enumerate(lengths):
        if fn is None:
            t = np.arange(T + 1, dtype=np.float32)
            mu = np.stack([t + 1000 * e] + [rng.normal(size=T + 1).astype(np.float32)] * (Z - 1), 1)
            logvar = np.full((T + 1, Z), -2.0, np.float32)
            actions = np.repeat((np.arange(T, dtype=np.float32) + 1000 * e)[:, None], A, 1)
            rewards = np.arange(T, dtype=np.float32) + 1000 * e
            dones = np.zeros(T, np.float32)
            dones[-1] = 1.0
        else:
            mu, logvar, actions, rewards, dones = fn(T, rng)
        p = folder / f"episode_{e:06d}.npz"
        save_latents(p, mu, logvar, actions, rewards, dones, seed=e)
        files.append(p)
    return files


def test_sampler_pairs_inputs_with_targets(tmp_path):
    lengths = [23, 7, 40, 16]
    files = _write_episodes(tmp_path, lengths)
    eps = LatentEpisodes(files)
    assert (eps.z_dim, eps.action_dim, eps.total_steps) == (2, 3, sum(lengths))
    L, B = 10, 3
    sampler = SequenceSampler(eps, L, B, seed=7)
    covered = {}
    n_batches = 0
    for batch in sampler.epoch(0):
        n_batches += 1
        Lb, Bb = batch.mask.shape
        assert batch.mu.shape == batch.logvar.shape == (Lb + 1, Bb, 2)
        assert batch.actions.shape == (Lb, Bb, 3) and batch.rewards.shape == batch.dones.shape == (Lb, Bb)
        for b in range(Bb):
            m = batch.mask[:, b].bool()
            n = int(m.sum())
            assert m[:n].all() and not m[n:].any()  # valid prefix, padding after
            a = batch.actions[:n, b, 0]
            # inputs mu[t], actions[t]; targets mu[t+1], rewards[t], dones[t]
            torch.testing.assert_close(batch.mu[:n, b, 0], a)
            torch.testing.assert_close(batch.mu[1:n + 1, b, 0], a + 1)
            torch.testing.assert_close(batch.rewards[:n, b], a)
            e, t0 = divmod(int(a[0].item()), 1000)
            T = lengths[e]
            assert n == min(L, T)
            expect_done = torch.tensor([1.0 if t0 + j == T - 1 else 0.0 for j in range(n)])
            torch.testing.assert_close(batch.dones[:n, b], expect_done)
            assert (batch.actions[n:, b] == 0).all() and (batch.mu[n + 1:, b] == 0).all()
            for j in range(n):
                covered[(e, t0 + j)] = covered.get((e, t0 + j), 0) + 1
    assert n_batches == len(sampler)
    assert all((e, 0) in covered for e in range(len(lengths)))  # every episode start, every epoch
    # an epoch covers about every step once: ceil(T/L) windows per episode
    windows = sum(-(-T // L) for T in lengths)
    assert len(sampler) == -(-windows // B)
    assert sum(covered.values()) == sum(min(T, L) * (-(-T // L)) for T in lengths)
    # seeded: the same epoch twice gives the same batches, another epoch differs
    first = [b.actions for b in sampler.epoch(3)]
    again = [b.actions for b in sampler.epoch(3)]
    assert all(torch.equal(x, y) for x, y in zip(first, again))
    z = sample_z(torch.zeros(1000, 2), torch.full((1000, 2), math.log(4.0)))
    assert 1.8 < z.std().item() < 2.2  # exp(logvar/2) = 2


def test_length_buckets_keep_the_windows_and_pad_less(tmp_path):
    lengths = [3, 50, 7, 31, 12, 45, 2, 60, 19, 25, 8, 33] * 3
    eps = LatentEpisodes(_write_episodes(tmp_path, lengths))
    plain, bucketed = SequenceSampler(eps, 20, 4, seed=1), SequenceSampler(eps, 20, 4, seed=1, length_buckets=3)
    assert len(plain) == len(bucketed)

    def padded_steps(batches):
        return sum(int(w[:, 2].max()) * len(w) for w in batches)

    for epoch in range(3):
        a, b = plain.batch_windows(epoch), bucketed.batch_windows(epoch)
        rows = lambda batches: sorted(map(tuple, np.concatenate(batches).tolist()))
        assert rows(a) == rows(b)  # the same windows, only batched differently
        assert padded_steps(b) < padded_steps(a)
        real = sum(int(w[:, 2].sum()) for w in b)
        assert bucketed.mean_steps_per_batch() == pytest.approx(real / len(b))
        assert all(np.array_equal(x, y) for x, y in zip(b, bucketed.batch_windows(epoch)))  # seeded
    with pytest.raises(ValueError, match="length_buckets"):
        SequenceSampler(eps, 20, 4, length_buckets=-1)


def test_train_rnn_with_length_buckets_resumes_exactly(tmp_path):
    files = _write_episodes(tmp_path, [12, 5, 20, 3, 17], Z=2, A=3)
    cfg = _tiny_cfg(epochs=2, length_buckets=2)
    whole = train_rnn(files, tmp_path / "whole", cfg, action_dim=3, progress=False, device="cpu")
    train_rnn(files, tmp_path / "split", replace(cfg, epochs=1), action_dim=3, progress=False, device="cpu")
    split = train_rnn(files, tmp_path / "split", cfg, action_dim=3, progress=False, device="cpu")
    without_time = lambda history: [{k: v for k, v in row.items() if k != "seconds"} for row in history]
    assert math.isfinite(whole["loss"]) and without_time(split["history"]) == without_time(whole["history"])


def test_tiny_m_learns_the_convention(tmp_path):
    """z_{t+1}, rewards[t], dones[t] are functions of (z_t, a_t) only; M learns them."""

    def make(T, rng):
        a = rng.uniform(-1, 1, size=(T, 1)).astype(np.float32)
        mu = np.zeros((T + 1, 1), np.float32)
        mu[0] = rng.uniform(-1, 1)
        mu[1:, 0] = 0.8 * a[:, 0]
        rewards = (a[:, 0] + mu[:-1, 0]).astype(np.float32)
        dones = (a[:, 0] > 0.0).astype(np.float32)
        return mu, np.full((T + 1, 1), -12.0, np.float32), a, rewards, dones

    files = _write_episodes(tmp_path, [60] * 8, fn=make)
    eps = LatentEpisodes(files)
    torch.manual_seed(0)
    m = MDNRNN(1, 1, hidden=24, n_gaussians=2, layout="per_dim")
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    sampler = SequenceSampler(eps, 20, 8, seed=0)
    for epoch in range(150):
        for batch in sampler.epoch(epoch):
            z = sample_z(batch.mu, batch.logvar)
            out, _ = m(z[:-1], batch.actions)
            loss = rnn_losses(out, z[1:], batch.rewards, batch.dones, batch.mask, "per_dim")["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
    m.eval()
    g = torch.Generator().manual_seed(1)
    z = torch.rand(200, 1, generator=g) * 1.6 - 0.8
    a = torch.rand(200, 1, generator=g) * 2 - 1
    with torch.no_grad():
        out, _ = m.step(z, a, None)
    pred = (out.logit_pi.softmax(1) * out.mu).sum(1)  # mixture mean
    assert (pred - 0.8 * a).abs().mean().item() < 0.1
    assert (out.reward - (a + z)[:, 0]).abs().mean().item() < 0.25
    acc = ((out.done_logit > 0) == (a[:, 0] > 0.0)).float().mean().item()
    assert acc > 0.9


# ----------------------------------------------------------------------------- training


def _tiny_cfg(**kw):
    base = RNNConfig(hidden=8, n_gaussians=2, layout="shared", seq_len=8, batch_size=3, epochs=2,
                     lr=1e-3, done_pos_weight=10.0, seed=0)
    return replace(base, **kw)


def test_done_loss_uses_pos_weight():
    L, B, K, Z = 3, 2, 2, 1
    out = MDNOutput(torch.zeros(L, B, K), torch.zeros(L, B, K, Z), torch.zeros(L, B, K, Z),
                    torch.zeros(L, B), torch.tensor([[0.3, -1.0], [2.0, 0.0], [0.5, 0.1]]))
    dones = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    terms = rnn_losses(out, torch.zeros(L, B, Z), torch.zeros(L, B), dones, mask, "shared",
                       done_pos_weight=7.0)
    x, y = out.done_logit, dones
    per = -(7.0 * y * torch.log(torch.sigmoid(x)) + (1 - y) * torch.log(1 - torch.sigmoid(x)))
    torch.testing.assert_close(terms["done_bce"], (per * mask).sum() / mask.sum())
    nll = mdn_nll(out.logit_pi, out.mu, out.logsigma, torch.zeros(L, B, Z), "shared")
    torch.testing.assert_close(terms["nll"], (nll * mask).sum() / mask.sum() / Z)
    torch.testing.assert_close(terms["loss"], terms["nll"] + terms["reward_mse"] + terms["done_bce"])


@pytest.mark.parametrize("layout", ["shared", "per_dim"])
def test_mean_mse_anchors_the_mixture_mean(layout):
    from wm_fast.mdnrnn import mixture_mean

    torch.manual_seed(0)
    L, B, K, Z = 3, 2, 2, 2
    logit_pi = torch.randn(L, B, K) if layout == "shared" else torch.randn(L, B, K, Z)
    out = MDNOutput(logit_pi, torch.randn(L, B, K, Z), torch.zeros(L, B, K, Z), torch.zeros(L, B), torch.zeros(L, B))
    target, mask = torch.randn(L, B, Z), torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    terms = rnn_losses(out, target, torch.zeros(L, B), torch.zeros(L, B), mask, layout, mean_mse_weight=3.0)
    k_axis = -1 if layout == "shared" else -2
    pi = torch.softmax(logit_pi, k_axis)
    mean = ((pi.unsqueeze(-1) if layout == "shared" else pi) * out.mu).sum(-2)
    torch.testing.assert_close(mixture_mean(out, layout), mean)
    want = (((mean - target) ** 2).mean(-1) * mask).sum() / mask.sum()
    torch.testing.assert_close(terms["mean_mse"], want)
    torch.testing.assert_close(terms["loss"], terms["nll"] + terms["reward_mse"] + terms["done_bce"] + 3.0 * want)


def test_a_balanced_done_weight_trains(tmp_path):
    files = _write_episodes(tmp_path, [12, 5, 20], Z=2, A=3)
    m = train_rnn(files, tmp_path / "b", _tiny_cfg(epochs=1, done_pos_weight=0.0, mean_mse_weight=1.0),
                  action_dim=3, progress=False, device="cpu")
    assert m["epoch"] == 1.0 and m["mean_mse"] > 0


def test_train_rnn_checkpoints_and_resumes(tmp_path):
    files = _write_episodes(tmp_path, [12, 5, 20], Z=2, A=3)
    cfg = _tiny_cfg(epochs=2)
    run_a = tmp_path / "a"
    m = train_rnn(files, run_a, cfg, action_dim=3, progress=False, device="cpu")
    ckpt = run_a / "rnn.pt"
    assert ckpt.exists() and len(m["history"]) == 2 and m["epoch"] == 2.0
    assert math.isfinite(m["loss"]) and m["checkpoint"] == str(ckpt)
    state = load_checkpoint(ckpt)
    assert state["epoch"] == 2 and state["config"]["done_pos_weight"] == 10.0
    assert (state["z_dim"], state["action_dim"], state["hidden"], state["n_gaussians"], state["layout"]) == \
        (2, 3, 8, 2, "shared")
    assert all(isinstance(v, float) for row in state["history"] for v in row.values())
    model = load_mdnrnn(ckpt)
    assert not model.training and model.layout == "shared" and model.hidden == 8

    # done: nothing to train, same checkpoint
    before = ckpt.read_bytes()
    again = train_rnn(files, run_a, cfg, action_dim=3, progress=False, device="cpu")
    assert ckpt.read_bytes() == before and len(again["history"]) == 2

    # resume with more epochs == training 3 epochs in one go
    resumed = train_rnn(files, run_a, replace(cfg, epochs=3), action_dim=3, progress=False, device="cpu")
    assert len(resumed["history"]) == 3 and load_checkpoint(ckpt)["epoch"] == 3
    run_b = tmp_path / "b"
    straight = train_rnn(files, run_b, replace(cfg, epochs=3), action_dim=3, progress=False, device="cpu")
    sa, sb = load_mdnrnn(ckpt).state_dict(), load_mdnrnn(run_b / "rnn.pt").state_dict()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k])
    assert resumed["loss"] == pytest.approx(straight["loss"])

    # another architecture in the same folder is refused, naming the file
    with pytest.raises(CheckpointError, match="rnn.pt"):
        train_rnn(files, run_a, replace(cfg, epochs=4, hidden=16), action_dim=3, progress=False, device="cpu")


def test_train_rnn_with_dropout(tmp_path):
    files = _write_episodes(tmp_path, [12, 5, 20], Z=2, A=3)
    cfg = _tiny_cfg(epochs=2, dropout=0.3)
    m = train_rnn(files, tmp_path / "d", cfg, action_dim=3, progress=False, device="cpu")
    assert m["epoch"] == 2.0 and math.isfinite(m["loss"]) and math.isfinite(m["quality_z_nll"])
    state = torch.load(tmp_path / "d" / "rnn.pt", weights_only=True)
    assert state["config"]["dropout"] == 0.3
    assert set(state["model"]) == set(MDNRNN(2, 3, 8, 2, "shared").state_dict())  # same weights as ever
    dropped = load_mdnrnn(tmp_path / "d" / "rnn.pt").state_dict()
    plain = train_rnn(files, tmp_path / "p", replace(cfg, dropout=0.0), action_dim=3, progress=False, device="cpu")
    assert plain["loss"] != m["loss"]
    # resuming draws the same masks (torch's RNG is in the checkpoint): 1 + 1 epochs == 2 epochs
    train_rnn(files, tmp_path / "r", replace(cfg, epochs=1), action_dim=3, progress=False, device="cpu")
    train_rnn(files, tmp_path / "r", cfg, action_dim=3, progress=False, device="cpu")
    resumed = load_mdnrnn(tmp_path / "r" / "rnn.pt").state_dict()
    for k in dropped:
        torch.testing.assert_close(resumed[k], dropped[k])
    # a checkpoint from before the field existed resumes (as dropout 0)
    train_rnn(files, tmp_path / "o", replace(cfg, epochs=1, dropout=0.0), action_dim=3, progress=False, device="cpu")
    old = load_checkpoint(tmp_path / "o" / "rnn.pt")
    del old["config"]["dropout"]
    save_checkpoint(tmp_path / "o" / "rnn.pt", old)
    again = train_rnn(files, tmp_path / "o", replace(cfg, dropout=0.0), action_dim=3, progress=False, device="cpu")
    assert again["loss"] == pytest.approx(plain["loss"])


def test_bad_checkpoints_raise(tmp_path):
    files = _write_episodes(tmp_path, [10], Z=2, A=1)
    train_rnn(files, tmp_path / "run", _tiny_cfg(epochs=1), action_dim=1, progress=False, device="cpu")
    good = tmp_path / "run" / "rnn.pt"
    data = good.read_bytes()

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.pt"):
        load_mdnrnn(truncated)

    state = load_checkpoint(good)
    state["model"]["head.bias"][0] = float("nan")
    nan = tmp_path / "nan.pt"
    save_checkpoint(nan, state)
    with pytest.raises(CheckpointError, match="nan.pt"):
        load_mdnrnn(nan)

    state = load_checkpoint(good)
    state["hidden"] = 16  # weights no longer match the described model
    mismatched = tmp_path / "mismatched.pt"
    save_checkpoint(mismatched, state)
    with pytest.raises(CheckpointError, match="mismatched.pt"):
        load_mdnrnn(mismatched)

    with pytest.raises(CheckpointError, match="missing.pt"):
        load_mdnrnn(tmp_path / "missing.pt")

    # a truncated rnn.pt in a run folder stops training with a clear error too
    (tmp_path / "run" / "rnn.pt").write_bytes(data[:100])
    with pytest.raises(CheckpointError, match="rnn.pt"):
        train_rnn(files, tmp_path / "run", _tiny_cfg(epochs=2), action_dim=1, progress=False, device="cpu")


def test_every_epoch_trains_on_every_episode_end(tmp_path):
    """The done label sits on an episode's last step: each epoch must include it."""
    from wm_fast.sequences import LatentEpisodes

    rng = np.random.default_rng(0)
    files = []
    for i, t in enumerate((7, 50, 123)):
        path = tmp_path / f"episode_{i:06d}.npz"
        dones = np.zeros(t, np.float32)
        dones[-1] = 1.0
        save_latents(path, rng.normal(size=(t + 1, 3)), np.zeros((t + 1, 3)), np.zeros((t, 2)),
                     np.zeros(t), dones, seed=i)
        files.append(path)
    episodes = LatentEpisodes(files)
    for epoch in range(3):
        w = episodes.windows(10, np.random.default_rng([1, epoch]))
        for e, t in enumerate((7, 50, 123)):
            mine = w[w[:, 0] == e]
            assert (mine[:, 1] + mine[:, 2]).max() == t
