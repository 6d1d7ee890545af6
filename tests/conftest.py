"""Shared fixtures: small deterministic models, one thread per test process."""

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def small_model():
    """A small MDN-RNN (Z=4, A=3, H=8, K=3, per_dim) with fixed random weights."""
    from wm_fast.mdnrnn import MDNRNN

    torch.manual_seed(0)
    return MDNRNN(z_dim=4, action_dim=3, hidden=8, n_gaussians=3, layout="per_dim").eval()


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory):
    """A tiny CarRacing run through train-controller (dream, torch backend), built once per session.

    Tests that write into a run copy it first (shutil.copytree).
    """
    import wm_fast

    cfg = wm_fast.get_preset("tiny", env="carracing")
    cfg.controller.backend = "torch"
    run = wm_fast.Run(tmp_path_factory.mktemp("tiny_run") / "D", cfg, progress=False)
    for stage in ("collect", "train_vae", "encode", "train_rnn", "train_controller"):
        getattr(run, stage)()
    return run.dir


@pytest.fixture
def fake_models(tmp_path_factory):
    """vae.pt and rnn.pt of untrained small models (V z=32, M H=16 K=2, A=3), for worker tests."""
    from wm_fast.mdnrnn import MDNRNN
    from wm_fast.storage import save_checkpoint
    from wm_fast.vae import ConvVAE

    folder = tmp_path_factory.mktemp("fake_models")
    torch.manual_seed(0)
    save_checkpoint(folder / "vae.pt", {"model": ConvVAE(32).state_dict(), "z_dim": 32})
    arch = dict(z_dim=32, action_dim=3, hidden=16, n_gaussians=2, layout="per_dim")
    save_checkpoint(folder / "rnn.pt", {"model": MDNRNN(**arch).state_dict(), **arch})
    return folder / "vae.pt", folder / "rnn.pt"
