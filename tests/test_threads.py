"""wm_fast.threads.torch_threads: the thread count inside the block, and restored after it."""

import pytest
import torch

from wm_fast.threads import torch_threads


def test_torch_threads_restores_the_count_even_on_error():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError):
        with torch_threads(1):
            assert torch.get_num_threads() == 1
            raise RuntimeError("inside")
    assert torch.get_num_threads() == before
