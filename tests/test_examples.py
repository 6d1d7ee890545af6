"""Every example runs with its smallest settings and writes its PNG."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("name", ["reparameterization", "t_junction", "temperature", "dream_strip"])
def test_example_writes_png(name, tmp_path):
    out = tmp_path / f"{name}.png"
    proc = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), "--small", "--out", str(out)],
                          cwd=EXAMPLES, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 5000
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_reparameterized_gradient_matches_the_exact_one():
    sys.path.insert(0, str(EXAMPLES))
    try:
        from reparameterization import gradients, plain_sample_has_no_gradient
    finally:
        sys.path.remove(str(EXAMPLES))
    d_mu, d_sigma = gradients(200_000, mu0=1.5, sigma0=0.7)
    assert d_mu == pytest.approx(3.0, abs=0.03) and d_sigma == pytest.approx(1.4, abs=0.03)
    assert plain_sample_has_no_gradient()
