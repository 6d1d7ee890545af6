"""C and the pure-PyTorch dream reference."""

import pytest
import torch

from wm_fast.controller import LinearController, input_size, map_action, n_params, output_size, unflatten
from wm_fast.dream import DreamOptions, draw_noise, dream, dream_reference, resolve_backend
from wm_fast.mdnrnn import MDNRNN, sample_mdn


def test_carracing_controller_has_867_params():
    assert n_params(input_size(32, 256, "zh"), output_size("carracing", 3)) == 867
    assert input_size(64, 512, "zch") == 1088


def test_unflatten_is_row_major_w_then_b():
    params = torch.arange(2 * 3 + 2, dtype=torch.float32)
    w, b = unflatten(params, 3, 2)
    assert torch.equal(w, torch.tensor([[0.0, 1, 2], [3, 4, 5]]))
    assert torch.equal(b, torch.tensor([6.0, 7]))
    c = LinearController(params, 3, 2, "argmax", 2)
    x = torch.tensor([[1.0, 0, 0]])
    torch.testing.assert_close(c.raw(x), torch.tensor([[6.0, 10.0]]))


def test_batched_controller_matches_loop():
    torch.manual_seed(0)
    params = torch.randn(4, n_params(5, 3))
    x = torch.randn(4, 7, 5)
    batched = LinearController(params, 5, 3).raw(x)
    for p in range(4):
        torch.testing.assert_close(batched[p], LinearController(params[p], 5, 3).raw(x[p]))


def test_action_mappings():
    raw = torch.tensor([[0.0, 0.0, 0.0], [10.0, -10.0, 10.0]])
    a = map_action(raw, "carracing", 3)
    torch.testing.assert_close(a[0], torch.tensor([0.0, 0.5, 0.5]))
    assert a[1, 0] > 0.99 and a[1, 1] < 0.01 and a[1, 2] > 0.99
    thr = map_action(torch.tensor([[-2.0], [0.0], [2.0], [0.3]]), "threshold", 1)
    assert thr.flatten().tolist() == [-1.0, 0.0, 1.0, 0.0]
    arg = map_action(torch.tensor([[0.1, 0.9], [2.0, -1.0]]), "argmax", 2)
    assert arg.tolist() == [[0.0, 1.0], [1.0, 0.0]]


def test_controller_rejects_nan_params():
    with pytest.raises(ValueError, match="NaN"):
        LinearController(torch.full((n_params(3, 2),), float("nan")), 3, 2)


def _pool(z_dim=4, n=5):
    torch.manual_seed(1)
    return torch.randn(n, z_dim), torch.randn(n, z_dim) - 2


def _hand_dream(model, params, mu, logvar, opts, noise):
    """A plain per-rollout loop (no batching) to check the batched reference against."""
    p, r = params.shape[0], opts.rollouts
    returns = torch.zeros(p, r)
    lengths = torch.zeros(p, r, dtype=torch.int64)
    n_in = input_size(model.z_dim, model.hidden, "zh")
    for i in range(p):
        c = LinearController(params[i], n_in, 3)
        for j in range(r):
            k = noise.init_index[i, j]
            z = (mu[k] + torch.exp(0.5 * logvar[k]) * noise.init_eps[i, j])[None]
            state = model.initial_state(1)
            masks = (None, None) if noise.mask_z is None else (noise.mask_z[i, j][None], noise.mask_h[i, j][None])
            for t in range(opts.steps):
                a = c(torch.cat([z, state[0]], -1))
                out, state = model.step(z, a, state, *masks)
                returns[i, j] += out.reward[0]
                lengths[i, j] += 1
                if torch.sigmoid(out.done_logit[0]) > opts.done_threshold:
                    break
                z = sample_mdn(out, opts.temperature, model.layout,
                               u=noise.u[t, i, j][None], eps=noise.eps[t, i, j][None])
    return returns, lengths


@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("layout", ["shared", "per_dim"])
def test_reference_matches_unbatched_loop(layout, dropout):
    torch.manual_seed(0)
    model = MDNRNN(4, 3, 8, 3, layout).eval()
    with torch.no_grad():
        model.head.bias[-1] = -0.5  # some dreams end early
        model.head.weight[-1] *= 8
    mu, logvar = _pool()
    params = torch.randn(3, n_params(12, 3)) * 0.5
    opts = DreamOptions(steps=12, rollouts=2, temperature=1.15, seed=3, dropout=dropout)
    noise = draw_noise(3, opts, mu.shape[0], 4, 8)
    res = dream_reference(model, params, mu, logvar, opts, noise=noise)
    with torch.no_grad():
        ret, length = _hand_dream(model, params, mu, logvar, opts, noise)
    torch.testing.assert_close(res.returns, ret, rtol=1e-5, atol=1e-5)
    assert torch.equal(res.lengths, length)
    assert (res.lengths < opts.steps).any(), "the test should exercise early ends"


def test_same_seed_same_returns_and_crn(small_model):
    mu, logvar = _pool()
    params = torch.randn(4, n_params(12, 3)) * 0.1
    opts = DreamOptions(steps=10, rollouts=3, seed=7)
    a = dream(small_model, params, mu, logvar, opts, backend="torch")
    b = dream(small_model, params, mu, logvar, opts, backend="torch")
    assert torch.equal(a.returns, b.returns)
    c = dream(small_model, params, mu, logvar, DreamOptions(steps=10, rollouts=3, seed=8), backend="torch")
    assert not torch.equal(a.returns, c.returns)
    # common random numbers: identical candidates get identical returns per rollout
    same = params[:1].expand(4, -1).contiguous()
    crn = dream(small_model, same, mu, logvar,
                DreamOptions(steps=10, rollouts=3, seed=7, common_random_numbers=True), backend="torch")
    assert torch.equal(crn.returns[0], crn.returns[3])
    indep = dream(small_model, same, mu, logvar, opts, backend="torch")
    assert not torch.equal(indep.returns[0], indep.returns[3])


def test_alive_reward_and_trajectories(small_model):
    mu, logvar = _pool()
    params = torch.zeros(2, n_params(12, 3))
    with torch.no_grad():
        small_model.head.bias[-1] = -20.0  # never done
    res = dream_reference(small_model, params, mu, logvar,
                          DreamOptions(steps=9, rollouts=2, reward_source="alive"), return_trajectories=True)
    assert torch.equal(res.returns, torch.full((2, 2), 9.0))
    assert torch.equal(res.lengths, torch.full((2, 2), 9))
    assert res.trajectories["z"].shape == (9, 2, 2, 4)
    assert res.trajectories["h"].shape == (9, 2, 2, 8)
    assert torch.equal(res.trajectories["h"][0], torch.zeros(2, 2, 8))


@pytest.mark.parametrize("bad,match", [
    (dict(steps=0), "steps"), (dict(rollouts=0), "rollouts"), (dict(temperature=-1.0), "temperature"),
    (dict(action_mapping="x"), "action_mapping"), (dict(done_threshold=1.5), "done_threshold"),
    (dict(dropout=1.0), r"dropout must be in \[0, 1\)"), (dict(dropout=-0.1), "dropout"),
])
def test_bad_options_name_the_argument(small_model, bad, match):
    mu, logvar = _pool()
    opts = DreamOptions(**{"steps": 5, "rollouts": 2, **bad})
    with pytest.raises(ValueError, match=match):
        dream_reference(small_model, torch.zeros(2, n_params(12, 3)), mu, logvar, opts)


def test_bad_tensors_name_the_argument(small_model):
    mu, logvar = _pool()
    opts = DreamOptions(steps=5, rollouts=2)
    with pytest.raises(ValueError, match="params"):
        dream_reference(small_model, torch.zeros(2, 10), mu, logvar, opts)
    with pytest.raises(ValueError, match="params"):
        dream_reference(small_model, torch.zeros(0, n_params(12, 3)), mu, logvar, opts)
    with pytest.raises(ValueError, match="init_mu"):
        dream_reference(small_model, torch.zeros(2, n_params(12, 3)), mu[:, :2], logvar, opts)
    with pytest.raises(ValueError, match="init_logvar"):
        dream_reference(small_model, torch.zeros(2, n_params(12, 3)), mu, logvar * float("nan"), opts)
    with torch.no_grad():
        small_model.head.weight[0, 0] = float("inf")
    with pytest.raises(ValueError, match="head.weight"):
        dream_reference(small_model, torch.zeros(2, n_params(12, 3)), mu, logvar, opts)


def test_reference_dropout_masks(small_model):
    """One mask pair per rollout, from a stream of its own; shared by all candidates with CRN."""
    mu, logvar = _pool()
    opts = DreamOptions(steps=3, rollouts=4, seed=7, dropout=0.5)
    noise = draw_noise(3, opts, mu.shape[0], 4, 8)
    assert noise.mask_z.shape == (3, 4, 4) and noise.mask_h.shape == (3, 4, 8)
    assert set(torch.cat([noise.mask_z.flatten(), noise.mask_h.flatten()]).tolist()) == {0.0, 2.0}
    assert not torch.equal(noise.mask_h[0, 0], noise.mask_h[0, 1]) and not torch.equal(noise.mask_h[0], noise.mask_h[1])
    plain = draw_noise(3, DreamOptions(steps=3, rollouts=4, seed=7), mu.shape[0], 4)
    assert all(torch.equal(a, b) for a, b in zip(plain[:4], noise[:4])) and plain.mask_z is None
    crn = draw_noise(3, DreamOptions(steps=3, rollouts=4, seed=7, dropout=0.5, common_random_numbers=True), 5, 4, 8)
    assert torch.equal(crn.mask_h[0], crn.mask_h[2])
    with pytest.raises(ValueError, match="hidden"):
        draw_noise(3, opts, mu.shape[0], 4)
    params = torch.zeros(3, n_params(12, 3))
    for name, bad, match in (("mask_z", noise.mask_z[:, :, :2], "mask_z must be a float tensor of shape"),
                             ("mask_h", noise.mask_h * float("nan"), "mask_h holds NaN"),
                             ("mask_h", None, "given together")):
        with pytest.raises(ValueError, match=match):
            dream_reference(small_model, params, mu, logvar, opts, noise._replace(**{name: bad}))


def test_dream_evaluator_dreams_with_dream_dropout(small_model):
    import numpy as np

    from wm_fast.config import ControllerConfig
    from wm_fast.es import DreamEvaluator

    mu, logvar = _pool()
    params = (torch.randn(3, n_params(12, 3), generator=torch.Generator().manual_seed(2)) * 0.3).numpy()
    scores = {}
    for p in (0.0, 0.3):
        ev = DreamEvaluator(small_model, mu, logvar, ControllerConfig(dream_steps=8, backend="torch", dream_dropout=p))
        scores[p] = ev(params, seed=5, rollouts=3)
        opts = DreamOptions(steps=8, rollouts=3, seed=5, dropout=p)
        want = dream(small_model, torch.from_numpy(params), mu, logvar, opts, backend="torch").returns.mean(1)
        np.testing.assert_allclose(scores[p], want.double().numpy())
    assert not np.allclose(scores[0.0], scores[0.3])


def test_backend_resolution():
    assert resolve_backend("torch") == "torch"
    assert resolve_backend("auto") in ("torch", "cpp", "cuda")
    with pytest.raises(ValueError, match="backend"):
        resolve_backend("gpu")  # type: ignore[arg-type]
