"""V: the ConvVAE, its frame stream, training (with kill -9 and resume) and encoding."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from wm_fast.config import VAEConfig
from wm_fast.data import FrameStream, count_frames, episode_frame_count
from wm_fast.encode import encode_episodes, initial_latents
from wm_fast.shards import episode_name, list_episodes, load_latents, save_episode
from wm_fast.storage import CheckpointError, CorruptShardError, load_checkpoint, save_checkpoint
from wm_fast.train_vae import load_vae, train_vae
from wm_fast.vae import ConvVAE, frames_to_tensor, kl_divergence, vae_loss

REPO = Path(__file__).resolve().parents[1]


def make_episodes(
    folder: Path, lengths: list[int], kind: str = "random", seed: int = 0,
    terminated: list[bool] | None = None,
) -> list[Path]:
    """Episode shards with T = lengths[i] steps.

    kind="random": uniform noise; "blocks": smooth learnable frames (solid colour halves);
    "ids": frame number k (over all episodes) written in channels 0/1 of every pixel.
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files, k = [], 0
    for i, t in enumerate(lengths):
        n = t + 1
        if kind == "random":
            frames = rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
        elif kind == "blocks":
            frames = np.empty((n, 64, 64, 3), dtype=np.uint8)
            frames[:, :32] = rng.integers(0, 256, (n, 1, 1, 3))
            frames[:, 32:] = rng.integers(0, 256, (n, 1, 1, 3))
        else:
            ids = np.arange(k, k + n)
            frames = np.zeros((n, 64, 64, 3), dtype=np.uint8)
            frames[..., 0] = (ids % 256)[:, None, None]
            frames[..., 1] = (ids // 256)[:, None, None]
        k += n
        p = folder / episode_name(i)
        term = terminated[i] if terminated is not None else (i % 2 == 0)
        save_episode(p, frames, rng.uniform(-1, 1, (t, 3)), rng.standard_normal(t), term, not term, 100 + i)
        files.append(p)
    return files


def frame_ids(batch: torch.Tensor) -> list[int]:
    b = batch.numpy().astype(np.int64)
    return list(b[:, 0, 0, 0] + 256 * b[:, 0, 0, 1])


# ---------------------------------------------------------------------------- the model


def test_shapes():
    torch.manual_seed(0)
    vae = ConvVAE(z_dim=16)
    x = torch.rand(5, 3, 64, 64)
    mu, logvar = vae.encode(x)
    assert mu.shape == logvar.shape == (5, 16)
    y = vae.decode(torch.randn(5, 16))
    assert y.shape == (5, 3, 64, 64) and (y >= 0).all() and (y <= 1).all()
    recon, mu2, logvar2 = vae(x)
    assert recon.shape == (5, 3, 64, 64) and mu2.shape == (5, 16) and logvar2.shape == (5, 16)
    assert ConvVAE().z_dim == 32


def test_frames_to_tensor():
    frames = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    t = frames_to_tensor(frames)
    assert t.shape == (2, 3, 64, 64) and t.dtype == torch.float32 and t.is_contiguous()
    assert torch.allclose(t[1, 2], torch.from_numpy(frames[1, :, :, 2]).float() / 255)
    assert torch.equal(frames_to_tensor(torch.from_numpy(frames)), t)
    with pytest.raises(ValueError, match="uint8"):
        frames_to_tensor(frames.astype(np.float32))
    with pytest.raises(ValueError, match="64, 64, 3"):
        frames_to_tensor(frames[:, :32])


def test_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(1)
    mu = torch.randn(7, 32, generator=g, dtype=torch.float64)
    logvar = torch.randn(7, 32, generator=g, dtype=torch.float64)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = torch.distributions.kl_divergence(q, p).sum(-1)
    torch.testing.assert_close(kl_divergence(mu, logvar), expected)


def test_kl_tolerance_clamps():
    x = torch.rand(4, 3, 64, 64)
    z = 32
    mu = torch.zeros(4, z, requires_grad=True)
    logvar = torch.zeros(4, z, requires_grad=True)  # KL == 0 < 0.5 * 32
    loss, recon, kl = vae_loss(x, x, mu, logvar, 0.5, z)
    assert recon.item() == 0.0 and kl.item() == pytest.approx(16.0) and loss.item() == pytest.approx(16.0)
    loss.backward()  # clamped: no gradient through the KL
    assert mu.grad.abs().sum() == 0 and logvar.grad.abs().sum() == 0
    assert vae_loss(x, x, mu, logvar, 0.0, z)[2].item() == 0.0
    # a large KL is not clamped
    big = torch.full((4, z), 3.0)
    assert vae_loss(x, x, big, torch.zeros(4, z), 0.5, z)[2].item() == pytest.approx(0.5 * 9 * z)
    # per-sample clamp (the original) vs clamp of the batch mean
    mu2 = torch.zeros(2, z)
    mu2[0] = 2.0  # KL_0 = 64, KL_1 = 0
    assert vae_loss(x[:2], x[:2], mu2, torch.zeros(2, z), 0.5, z)[2].item() == pytest.approx((64 + 16) / 2)
    assert vae_loss(x[:2], x[:2], mu2, torch.zeros(2, z), 0.5, z, kl_clamp="batch")[2].item() == pytest.approx(32)


def test_recon_loss_is_sum_over_pixels_mean_over_batch():
    x = torch.zeros(2, 3, 64, 64)
    y = torch.zeros(2, 3, 64, 64)
    y[0] = 0.5
    _, recon, _ = vae_loss(y, x, torch.zeros(2, 4), torch.zeros(2, 4), 0.0, 4)
    assert recon.item() == pytest.approx(0.25 * 3 * 64 * 64 / 2)


def test_reparameterization_has_gradients():
    torch.manual_seed(0)
    mu = torch.zeros(3, 8, requires_grad=True)
    logvar = torch.zeros(3, 8, requires_grad=True)
    z = ConvVAE.reparameterize(mu, logvar)
    assert not torch.equal(z, mu)  # noise was added
    (z ** 2).sum().backward()
    assert mu.grad is not None and mu.grad.abs().sum() > 0
    assert logvar.grad is not None and logvar.grad.abs().sum() > 0
    vae = ConvVAE(8)
    recon, m, lv = vae(torch.rand(2, 3, 64, 64))
    recon.sum().backward()
    assert vae.fc_mu.weight.grad.abs().sum() > 0 and vae.fc_logvar.weight.grad.abs().sum() > 0


# ---------------------------------------------------------------------------- the stream


def test_frame_stream_every_frame_once_bounded(tmp_path):
    lengths = [10, 25, 17, 30, 12, 21, 9]
    files = make_episodes(tmp_path, lengths, kind="ids")
    total = sum(t + 1 for t in lengths)
    assert count_frames(files) == total
    assert episode_frame_count(files[1]) == 26
    stream = FrameStream(files, batch_size=8, shuffle_shards=2, seed=3)
    orders = []
    for epoch in range(2):
        stream.set_epoch(epoch)
        batches = list(stream)
        sizes = [len(b) for b in batches]
        assert all(s == 8 for s in sizes[:-1]) and 1 <= sizes[-1] <= 8
        assert len(batches) == stream.num_batches()
        ids = [i for b in batches for i in frame_ids(b)]
        assert sorted(ids) == list(range(total))  # every frame exactly once
        assert batches[0].dtype == torch.uint8 and batches[0].shape[1:] == (64, 64, 3)
        assert stream.peak_buffer_frames <= 2 * max(lengths + [0]) + 2 + 7
        assert stream.peak_buffer_frames < total
        orders.append(ids)
    assert orders[0] != orders[1]  # reshuffled per epoch
    assert [frame_ids(b) for b in stream.iter_epoch(0)] == [
        frame_ids(b) for b in FrameStream(files, 8, 2, seed=3).iter_epoch(0)
    ]  # same seed and epoch, same order
    # stride and drop_last
    s3 = FrameStream(files, batch_size=8, shuffle_shards=3, frame_stride=3, drop_last=True)
    ids3 = [i for b in s3 for i in frame_ids(b)]
    assert count_frames(files, 3) == sum(len(range(0, t + 1, 3)) for t in lengths)
    assert len(ids3) == (count_frames(files, 3) // 8) * 8 == s3.num_batches() * 8
    starts = np.cumsum([0] + [t + 1 for t in lengths])[:-1]
    allowed = {int(s + j) for s, t in zip(starts, lengths) for j in range(0, t + 1, 3)}
    assert set(ids3) <= allowed and len(set(ids3)) == len(ids3)


def test_corrupt_shard_named(tmp_path):
    files = make_episodes(tmp_path / "ep", [5, 5, 5])
    files[1].write_bytes(files[1].read_bytes()[:200])
    with pytest.raises(CorruptShardError, match="episode_000001"):
        list(FrameStream(files, 4, shuffle_shards=1))
    with pytest.raises(CorruptShardError, match="episode_000001"):
        count_frames(files)
    vae = ConvVAE(4)
    with pytest.raises(CorruptShardError, match="episode_000001"):
        encode_episodes(files, vae, tmp_path / "lat", progress=False)


# ---------------------------------------------------------------------------- training


def small_cfg(**kw) -> VAEConfig:
    base = dict(z_dim=8, epochs=2, batch_size=16, lr=1e-3, shuffle_shards=2, seed=0)
    base.update(kw)
    return VAEConfig(**base)


def test_train_vae_two_epochs(tmp_path):
    files = make_episodes(tmp_path / "ep", [20, 20, 20, 20], kind="blocks")
    out = tmp_path / "vae"
    m = train_vae(files, out, small_cfg(), progress=False)
    assert (out / "vae.pt").exists() and (out / "reconstruction.png").stat().st_size > 1000
    assert m["epochs"] == 2 and m["resumed_from_epoch"] == 0
    assert all(np.isfinite([m["loss"], m["recon"], m["kl"], m["frames_per_s"], m["seconds"]]))
    h = m["history"]
    assert len(h) == 2 and h[1]["loss"] < h[0]["loss"]
    assert h[0]["frames"] == 84
    state = load_checkpoint(out / "vae.pt")
    assert state["epoch"] == 2 and state["z_dim"] == 8 and state["config"]["epochs"] == 2
    assert isinstance(state["history"][0]["loss"], float)
    vae = load_vae(out / "vae.pt")
    assert not vae.training and vae.z_dim == 8
    # already done: returns at once with the stored metrics
    again = train_vae(files, out, small_cfg(), progress=False)
    assert again["resumed_from_epoch"] == 2 and again["loss"] == m["loss"]
    # other settings are refused rather than silently mixed
    with pytest.raises(CheckpointError, match="lr"):
        train_vae(files, out, small_cfg(lr=5e-4), progress=False)


def test_train_vae_seeded_and_resume_exact(tmp_path):
    files = make_episodes(tmp_path / "ep", [12, 15, 9], kind="blocks")
    a = train_vae(files, tmp_path / "a", small_cfg(epochs=2), progress=False)
    b1 = train_vae(files, tmp_path / "b", small_cfg(epochs=1), progress=False)
    b2 = train_vae(files, tmp_path / "b", small_cfg(epochs=2), progress=False)
    assert b1["epochs"] == 1 and b2["resumed_from_epoch"] == 1 and b2["epochs"] == 2
    wa = load_vae(tmp_path / "a" / "vae.pt").state_dict()
    wb = load_vae(tmp_path / "b" / "vae.pt").state_dict()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    assert a["loss"] == b2["loss"]
    c = train_vae(files, tmp_path / "c", small_cfg(epochs=1, seed=1), progress=False)
    assert c["loss"] != b1["loss"]


KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from wm_fast.config import VAEConfig
    from wm_fast.train_vae import train_vae
    files = sorted(Path(sys.argv[1]).glob("episode_*.npz"))
    train_vae(files, Path(sys.argv[2]), VAEConfig(z_dim=8, epochs=int(sys.argv[3]), batch_size=32,
              lr=1e-3, shuffle_shards=4, seed=0), progress=False)
    """
)


@pytest.mark.slow
def test_kill_and_resume(tmp_path):
    epochs = 3
    # 4 batches an epoch (0.2-1 s on 2 busy cores); the kill follows the first checkpoint
    # within ~20 ms, well before the next epoch ends
    files = make_episodes(tmp_path / "ep", [31] * 4, kind="blocks")
    out = tmp_path / "vae"
    ckpt = out / "vae.pt"
    env = dict(os.environ, PYTHONPATH=str(REPO / "python"))
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(tmp_path / "ep"), str(out), str(epochs)], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not ckpt.exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed = load_checkpoint(ckpt)
    done = killed["epoch"]
    assert 1 <= done < epochs, f"the first run was not killed mid-training (epoch {done})"
    assert not list(out.glob("*.tmp"))  # atomic: no stray half-written file kept as vae.pt
    m = train_vae(files, out, VAEConfig(z_dim=8, epochs=epochs, batch_size=32, lr=1e-3,
                                        shuffle_shards=4, seed=0), progress=False)
    assert m["resumed_from_epoch"] == done  # did not start from 0
    assert m["epochs"] == epochs and load_checkpoint(ckpt)["epoch"] == epochs
    assert m["history"][:done] == killed["history"]  # the killed run's epochs are kept
    assert (out / "reconstruction.png").exists()


def test_bad_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_vae(tmp_path / "nope.pt")
    torch.manual_seed(0)
    vae = ConvVAE(8)
    good = {"model": vae.state_dict(), "z_dim": 8}
    path = tmp_path / "vae.pt"
    save_checkpoint(path, good)
    assert load_vae(path).z_dim == 8
    # truncated
    data = path.read_bytes()
    trunc = tmp_path / "trunc" / "vae.pt"
    trunc.parent.mkdir()
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=str(trunc)):
        load_vae(trunc)
    files = make_episodes(tmp_path / "ep", [5, 5])
    with pytest.raises(CheckpointError, match=str(trunc)):  # training does not silently restart
        train_vae(files, trunc.parent, small_cfg(), progress=False)
    # NaN weights
    sd = {k: v.clone() for k, v in vae.state_dict().items()}
    sd["dec_fc.weight"][0, 0] = float("nan")
    save_checkpoint(tmp_path / "nan.pt", {"model": sd, "z_dim": 8})
    with pytest.raises(CheckpointError, match="dec_fc.weight"):
        load_vae(tmp_path / "nan.pt")
    # wrong shape (weights of another z_dim) and not a VAE at all
    save_checkpoint(tmp_path / "shape.pt", {"model": vae.state_dict(), "z_dim": 16})
    with pytest.raises(CheckpointError, match="shape.pt"):
        load_vae(tmp_path / "shape.pt")
    save_checkpoint(tmp_path / "other.pt", {"model": {"w": torch.zeros(3)}, "z_dim": 8})
    with pytest.raises(CheckpointError, match="other.pt"):
        load_vae(tmp_path / "other.pt")


# ---------------------------------------------------------------------------- encoding


def test_encode_episodes(tmp_path):
    lengths = [10, 14, 7]
    files = make_episodes(tmp_path / "ep", lengths, terminated=[True, False, False])
    torch.manual_seed(0)
    vae = ConvVAE(6)
    out = tmp_path / "lat"
    r = encode_episodes(files, vae, out, batch_size=4, progress=False)
    assert r["encoded"] == 3 and r["skipped"] == 0 and r["frames"] == sum(t + 1 for t in lengths)
    for i, (p, t) in enumerate(zip(files, lengths)):
        lat = load_latents(out / episode_name(i))
        assert lat["mu"].shape == lat["logvar"].shape == (t + 1, 6)
        assert lat["actions"].shape == (t, 3) and lat["rewards"].shape == (t,)
        assert lat["dones"].dtype == np.float32 and lat["dones"].shape == (t,)
        expected = np.zeros(t, np.float32)
        if i == 0:  # terminated; episodes 1 and 2 were truncated: not a done
            expected[-1] = 1.0
        np.testing.assert_array_equal(lat["dones"], expected)
        assert int(lat["seed"]) == 100 + i
        ep = np.load(p)
        np.testing.assert_array_equal(lat["actions"], ep["actions"])
        with torch.no_grad():
            mu, lv = vae.encode(frames_to_tensor(ep["frames"]))
        np.testing.assert_allclose(lat["mu"], mu.numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(lat["logvar"], lv.numpy(), rtol=1e-5, atol=1e-5)
    # resumable: existing files are skipped, missing ones are written
    before = (out / episode_name(0)).stat().st_mtime_ns
    (out / episode_name(2)).unlink()
    r2 = encode_episodes(files, vae, out, progress=False)
    assert r2["skipped"] == 2 and r2["encoded"] == 1
    assert (out / episode_name(0)).stat().st_mtime_ns == before
    assert (out / episode_name(2)).exists()
    # the dreams' start pool: first frames
    mu0, lv0 = initial_latents(list(list_episodes(out).values()))
    assert mu0.shape == lv0.shape == (3, 6) and mu0.dtype == torch.float32
    np.testing.assert_array_equal(mu0[1].numpy(), load_latents(out / episode_name(1))["mu"][0])
