"""The compiled extension wm_fast._C: its ops agree with PyTorch and reject bad input."""

import pytest
import torch

from wm_fast.controller import LinearController, n_params

_C = pytest.importorskip("wm_fast._C", reason="extension not built")


def test_controller_forward_matches_pytorch():
    torch.manual_seed(0)
    params = torch.randn(5, n_params(11, 3))
    x = torch.randn(5, 7, 11)
    expected = LinearController(params, 11, 3).raw(x)
    torch.testing.assert_close(_C.controller_forward(params, x, 3), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.ops.wm_fast.controller_forward(params, x, 3), expected, rtol=1e-5, atol=1e-5)


def test_opcheck():
    params = torch.randn(2, n_params(4, 2))
    x = torch.randn(2, 3, 4)
    from wm_fast import ops

    torch.library.opcheck(ops.controller_forward.default, (params, x, 2))


@pytest.mark.parametrize("params,x,out,match", [
    (torch.randn(2, 10), torch.randn(2, 3, 4), 3, "params must have"),
    (torch.randn(2, 10, dtype=torch.float64), torch.randn(2, 3, 4), 2, "params must be float32"),
    (torch.randn(0, 10), torch.randn(0, 3, 4), 2, "at least one candidate"),
    (torch.randn(2, 10), torch.randn(3, 3, 4), 2, "candidates"),
    (torch.randn(2, 10), torch.randn(2, 4), 2, "x must be 3-D"),
    (torch.randn(2, 10), torch.randn(2, 3, 4), 0, "out_size"),
])
def test_bad_input_raises_value_error_naming_it(params, x, out, match):
    with pytest.raises(ValueError, match=match):
        _C.controller_forward(params, x, out)
