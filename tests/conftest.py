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
