"""TensorBoard scalars beside the logs (optional extra): written while training, off on request."""

import numpy as np
import pytest

from wm_fast.config import RNNConfig
from wm_fast.shards import save_latents

pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install 'wm-fast[tensorboard]')")


def _files(folder, n=3):
    rng = np.random.default_rng(0)
    out = []
    for e in range(n):
        p = folder / f"episode_{e:06d}.npz"
        save_latents(p, rng.normal(size=(9, 2)).astype(np.float32), np.zeros((9, 2), np.float32),
                     np.zeros((8, 3), np.float32), np.ones(8, np.float32), np.eye(8, dtype=np.float32)[-1], e)
        out.append(p)
    return out


def test_train_rnn_writes_its_curves_and_nothing_when_switched_off(tmp_path, monkeypatch):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from wm_fast.train_rnn import train_rnn

    cfg = RNNConfig(hidden=4, n_gaussians=2, seq_len=8, batch_size=2, epochs=2)
    train_rnn(_files(tmp_path), tmp_path / "rnn", cfg, action_dim=3, progress=False, device="cpu")
    acc = EventAccumulator(str(tmp_path / "rnn" / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("M/loss")] == [1, 2]
    assert "M quality/z_nll" in acc.Tags()["scalars"]

    monkeypatch.setenv("WM_FAST_TENSORBOARD", "0")
    train_rnn(_files(tmp_path), tmp_path / "off", cfg, action_dim=3, progress=False, device="cpu")
    assert not (tmp_path / "off" / "tensorboard").exists()
