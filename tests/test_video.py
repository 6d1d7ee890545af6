"""`wm-fast video`: a real episode beside V's decoding of M's dream from the same first frame."""

import json
import subprocess
import sys

import imageio.v3 as iio

from wm_fast.video import PANEL, real_beside_dream


def test_real_beside_dream_has_three_panels_per_real_step(tiny_run_dir):
    d = tiny_run_dir
    out = real_beside_dream("carracing", "gymnasium", d / "vae" / "vae.pt", d / "rnn" / "rnn.pt",
                            d / "controller" / "controller.pt", seed=5, steps=12)
    assert out["real_steps"] == 12 and 1 <= out["dream_steps"] <= 12
    assert len(out["frames"]) == 12 and out["frames"][0].shape == (PANEL, 3 * PANEL, 3)
    # the middle panel (V's decoding of the real z) differs from the dream panel once M dreams on
    assert (out["frames"][-1][:, PANEL:2 * PANEL] != out["frames"][-1][:, 2 * PANEL:]).any()


def test_the_cli_writes_the_gif_and_refuses_a_folder_that_is_not_a_run(tiny_run_dir, tmp_path):
    cmd = [sys.executable, "-m", "wm_fast", "video", "--run-dir", str(tiny_run_dir), "--controller", "dream",
           "--steps", "10", "--out", str(tmp_path / "v.gif")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["real_steps"] == 10
    assert iio.imread(tmp_path / "v.gif", index=None).shape[1:] == (PANEL, 3 * PANEL, 3)
    proc = subprocess.run([sys.executable, "-m", "wm_fast", "video", "--run-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "is not a run directory" in proc.stderr and "Traceback" not in proc.stderr
