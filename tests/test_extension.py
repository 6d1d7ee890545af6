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


def test_extension_links_the_shared_libstdcxx():
    """A static libstdc++ inside the module has uninitialised iostreams: error messages that
    format a number crash the process (seen on a GPU machine whose default g++ had no shared
    libstdc++). The module must depend on libstdc++.so.6 like torch does."""
    import shutil
    import subprocess
    import sys

    if not sys.platform.startswith("linux") or shutil.which("readelf") is None:
        pytest.skip("needs Linux and readelf")
    out = subprocess.run(["readelf", "-d", _C.__file__], capture_output=True, text=True, check=True).stdout
    needed = [line.split("[", 1)[1].rstrip("]") for line in out.splitlines() if "(NEEDED)" in line]
    assert any(n.startswith("libstdc++.so") for n in needed), f"{_C.__file__} needs only {needed}"


def test_error_message_formats_numbers():
    """The failure mode above, directly: a message with integers in it comes back as a ValueError."""
    with pytest.raises(ValueError, match=r"= 15 columns for in=4, out=3, got 10"):
        _C.controller_forward(torch.randn(2, 10), torch.randn(2, 3, 4), 3)
