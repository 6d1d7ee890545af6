"""DoomTakeCover: the env (frames, moves, +1 a frame, seeds, no files in the user's folder), its
collection (actions recorded as the moves made) and the whole pipeline on the `tiny` preset."""

import contextlib
import dataclasses
import json
import os

import numpy as np
import pytest

pytest.importorskip("vizdoom", reason="the doom extra (vizdoom) is not installed")

from wm_fast import envs  # noqa: E402
from wm_fast.cli import main  # noqa: E402
from wm_fast.config import get_preset  # noqa: E402
from wm_fast.envs.doom import canonical_action  # noqa: E402


def play(env, seed: int, moves: list[float], steps: int) -> tuple[list[np.ndarray], float, int, bool, bool]:
    frames, total = [env.reset(seed)], 0.0
    for t in range(steps):
        frame, reward, terminated, truncated = env.step(np.array([moves[t % len(moves)]], dtype=np.float32))
        frames.append(frame)
        total += reward
        if terminated or truncated:
            return frames, total, t + 1, terminated, truncated
    return frames, total, steps, False, False


def test_frames_moves_rewards_seeds_and_a_clean_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = envs.make("doom", max_steps=2100)
    try:
        frames, total, steps, terminated, truncated = play(env, 3, [0.0], 2100)
        assert frames[0].shape == (64, 64, 3) and frames[0].dtype == np.uint8 and frames[0].std() > 5
        assert terminated and not truncated and total == steps  # standing still dies; +1 a frame
        again, *_ = play(env, 3, [0.0], 60)
        assert all((a == b).all() for a, b in zip(frames[:60], again[:60]))  # one game per seed
        other, *_ = play(env, 4, [0.0], 2100)
        assert any((a != b).any() for a, b in zip(frames, other))  # another seed, another game
        left, *_ = play(env, 3, [-0.9], 20)
        right, *_ = play(env, 3, [0.9], 20)
        assert np.abs(left[20].astype(int) - right[20].astype(int)).mean() > 1  # moves change the view
        with pytest.raises(ValueError, match="finite"):
            env.step(np.array([np.nan], dtype=np.float32))
        with pytest.raises(ValueError, match=r"\(1,\)"):
            env.step(np.zeros(2, dtype=np.float32))
    finally:
        env.close()
    assert list(tmp_path.iterdir()) == []  # ViZDoom's _vizdoom/ and _vizdoom.ini went elsewhere
    with envs.make("doom", max_steps=15) as short:
        assert play(short, 3, [0.0], 100)[2:] == (15, False, True)


def test_canonical_action_is_the_move_made():
    got = [canonical_action(np.array([a]))[0] for a in (-1.0, -0.34, -0.33, 0.0, 0.33, 0.34, 1.0)]
    assert got == [-1.0, -1.0, 0.0, 0.0, 0.0, 1.0, 1.0]


@pytest.fixture(scope="module")
def tiny_doom(tmp_path_factory):
    root = tmp_path_factory.mktemp("doom")
    main(["run", "--env", "doom", "--preset", "tiny", "--run-dir", str(root / "run"), "--quiet"])
    return root / "run"


def test_tiny_doom_runs_every_stage_in_the_dream_on_z_c_h(tiny_doom):
    from wm_fast.es import load_controller
    from wm_fast.shards import load_episode

    d = tiny_doom
    for stage in ("collect", "train-vae", "encode", "train-rnn", "train-controller", "evaluate"):
        assert json.loads((d / f"{stage}.json").read_text())["complete"], stage
    ep = load_episode(d / "episodes" / "episode_000000.npz")
    assert set(np.unique(ep["actions"])) <= {-1.0, 0.0, 1.0}  # the held random policy's moves
    assert (ep["rewards"] == 1.0).all()
    cfg = get_preset("tiny", "doom")
    z, h = cfg.vae.z_dim, cfg.rnn.hidden
    assert load_controller(d / "controller" / "controller.pt").shape == (z + 2 * h + 1,)  # C on [z, c, h]: 1 output
    ev = json.loads((d / "evaluate.json").read_text())
    assert ev["episodes"] == cfg.evaluate.episodes and ev["returns"] == [float(x) for x in ev["lengths"]]
    assert ev["seeds"][0] == cfg.evaluate.seed_start >= 1_000_000


def test_temperature_sweep_trains_per_tau_and_scores_dream_beside_real(tiny_doom, capsys):
    main(["sweep-temperature", "--run-dir", str(tiny_doom), "--temperatures", "0.5", "1.15", "--episodes", "2",
          "--seed-start", "3000000", "--generations", "1", "--quiet"])
    table = json.loads((tiny_doom / "sweep" / "temperature.json").read_text())
    assert [r["temperature"] for r in table["rows"]] == [0.5, 1.15] and table["seeds"] == [3_000_000, 3_000_001]
    for r in table["rows"]:
        assert r["generations"] == 1 and r["dream"] >= 1 and r["real_mean"] >= 1
        tau_log = (tiny_doom / "sweep" / f"tau_{r['temperature']:g}" / "controller" / "log.jsonl").read_text()
        assert len(tau_log.splitlines()) == 1
    assert table["random"]["policy"] == "held" and table["random"]["mean"] >= 1
    assert (tiny_doom / "sweep" / "temperature.png").stat().st_size > 1000
    assert "| 1.15 |" in (tiny_doom / "sweep" / "temperature.md").read_text()
    assert table["commit"] and table["machine"] in (tiny_doom / "sweep" / "temperature.md").read_text()
    assert table["command"] == (f"wm-fast sweep-temperature --run-dir {tiny_doom} --temperatures 0.5 1.15 "
                                "--episodes 2 --seed-start 3000000 --generations 1")
    assert f"Command: `{table['command']}`" in (tiny_doom / "sweep" / "temperature.md").read_text()
    from wm_fast.pipeline import Run
    from wm_fast.sweep import sweep_command

    run = Run(tiny_doom, progress=False, save_config=False)
    run.cfg.controller = dataclasses.replace(run.cfg.controller, popsize=8, common_random_numbers=True)
    assert sweep_command(run, [1.0], 2, 5, None).endswith(  # settings other than the run's are named
        "--seed-start 5 --controller.popsize 8 --controller.common-random-numbers")
    before = (tiny_doom / "sweep" / "tau_0.5" / "evaluate.json").read_text()
    main(["sweep-temperature", "--run-dir", str(tiny_doom), "--temperatures", "0.5", "--episodes", "2",
          "--seed-start", "3000000", "--generations", "1", "--quiet"])  # finished pieces are reused
    assert (tiny_doom / "sweep" / "tau_0.5" / "evaluate.json").read_text() == before
    with pytest.raises(SystemExit):
        main(["sweep-temperature", "--run-dir", str(tiny_doom), "--temperatures", "0", "--quiet"])
    assert "temperatures must be positive" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # other controller settings than the finished sweep's
        main(["sweep-temperature", "--run-dir", str(tiny_doom), "--temperatures", "0.5", "--episodes", "2",
              "--seed-start", "3000000", "--controller.popsize", "8", "--quiet"])
    assert "tau 0.5" in capsys.readouterr().err


def test_export_copies_what_rescores_a_run_and_nothing_else(tiny_doom, tmp_path):
    import torch

    out = tmp_path / "exported"
    main(["export", "--run-dir", str(tiny_doom), "--out", str(out)])
    assert not (out / "episodes").exists() and not (out / "latents").exists() and not list(out.rglob("*.gif"))
    assert not list(out.rglob("es_state.pt")) and (out / "controller" / "controller.pt").exists()
    assert "optimizer" not in torch.load(out / "rnn" / "rnn.pt", weights_only=True)
    main(["evaluate", "--run-dir", str(out), "--episodes", "2", "--seed-start", "4000000", "--no-video", "--quiet"])
    scored = json.loads((out / "evaluate.json").read_text())
    main(["evaluate", "--run-dir", str(tiny_doom), "--episodes", "2", "--seed-start", "4000000", "--no-video",
          "--quiet"])
    assert scored["returns"] == json.loads((tiny_doom / "evaluate.json").read_text())["returns"]
    with pytest.raises(SystemExit):
        main(["export", "--run-dir", str(tiny_doom), "--out", str(tiny_doom / "inside")])


def test_the_committed_doom_headline_controller_still_dodges(tmp_path):
    """results/doom_headline re-scores as it stands (its V, M and the chosen round's C) on seeds no stage
    used, above the random policy's 351 (results/doom_temperature.md): an episode depends on its seed only."""
    import shutil
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "results" / "doom_headline"
    run = tmp_path / "headline"
    shutil.copytree(src, run)
    main(["evaluate", "--run-dir", str(run), "--episodes", "6", "--seed-start", "81000", "--no-video", "--quiet"])
    ev = json.loads((run / "evaluate.json").read_text())
    assert ev["controller"] == "iterate" and "round_002" in ev["controller_file"]
    assert ev["mean"] > 351, ev["returns"]


def _descendants(pid: int) -> set[int]:
    """Every live process below `pid` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("workers", [1, 2])
def test_a_killed_collection_takes_its_vizdoom_games_with_it(tmp_path, workers):
    """ViZDoom's game processes ignore SIGTERM; `kill` on a Doom collection (its whole process group, as a
    terminal's or a scheduler's kill does) still ends every game it started."""
    import signal
    import subprocess
    import sys
    import time

    cmd = [sys.executable, "-m", "wm_fast", "collect", "--run-dir", str(tmp_path / "D"), "--env", "doom",
           "--preset", "tiny", "--episodes", "200", "--workers", str(workers),
           "--envs-per-worker", "2", "--quiet"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    games: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while len(games) < 2 * workers and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            games = {p for p in _descendants(proc.pid) if "vizdoom" in open(f"/proc/{p}/cmdline").read()}
        assert len(games) == 2 * workers, f"no games started: {proc.stderr.read().decode()[-2000:]}"
        time.sleep(2)  # the games are playing
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 20
        while any(_alive(p) for p in games) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not [p for p in games if _alive(p)], "ViZDoom games outlived the killed collection"
    finally:  # a failing run leaves nothing behind
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        for p in games:
            with contextlib.suppress(OSError):
                os.kill(p, signal.SIGKILL)
