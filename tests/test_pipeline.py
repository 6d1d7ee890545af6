"""The whole pipeline through the CLI on the `tiny` preset, and the CLI's errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wm_fast.config import ConfigError, get_preset

STAGES = ("collect", "train-vae", "encode", "train-rnn", "train-controller", "evaluate")


def wm_fast(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "wm_fast", *args], cwd=cwd, env=env,
                           capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    proc = wm_fast("run", "--env", "carracing", "--preset", "tiny", "--run-dir", "D", "--quiet", cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root / "D", proc


def test_tiny_pipeline_writes_every_stage(tiny_run):
    run_dir, proc = tiny_run
    for stage in STAGES:
        record = json.loads((run_dir / f"{stage}.json").read_text())
        assert record["complete"] and record["config"]["env"] == "carracing"
    ev = json.loads((run_dir / "evaluate.json").read_text())
    cfg = get_preset("tiny")
    assert len(ev["returns"]) == cfg.evaluate.episodes
    assert ev["seeds"] == [cfg.evaluate.seed_start + i for i in range(cfg.evaluate.episodes)]
    assert all(isinstance(r, float) for r in ev["returns"])
    assert (run_dir / "vae" / "reconstruction.png").stat().st_size > 1000
    assert (run_dir / "controller" / "curve.png").exists()
    assert (run_dir / "evaluate.gif").stat().st_size > 1000
    assert len(list((run_dir / "episodes").glob("episode_*.npz"))) == cfg.collect.episodes
    assert len(list((run_dir / "latents").glob("episode_*.npz"))) == cfg.collect.episodes


def test_second_run_does_nothing_and_says_so(tiny_run):
    run_dir, _ = tiny_run
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()}
    proc = wm_fast("run", "--env", "carracing", "--preset", "tiny", "--run-dir", "D", "--quiet",
                   cwd=run_dir.parent)
    assert proc.returncode == 0, proc.stderr
    for stage in STAGES:
        assert f"{stage}: already complete" in proc.stdout
    after = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file() and p.name != "config.json"}
    assert all(before[p] == t for p, t in after.items())


def test_rerunning_a_finished_stage_command_keeps_its_record(tiny_run):
    """A rerun of `train-controller` / `train-rnn` that does no work leaves the stage records (seconds, commit) as
    they were, so results keep naming the commit that did the work."""
    run_dir, _ = tiny_run
    records = {s: (run_dir / f"{s}.json").read_text() for s in ("train-rnn", "train-controller")}
    for stage in records:
        proc = wm_fast(stage, "--run-dir", "D", "--quiet", cwd=run_dir.parent)
        assert proc.returncode == 0, proc.stderr
        assert (run_dir / f"{stage}.json").read_text() == records[stage]


def test_rerun_keeps_a_record_written_before_newer_fields(tiny_run, tmp_path):
    """A record from before a config field and a metric existed is still a finished stage: its seconds stay."""
    import shutil

    run_dir = shutil.copytree(tiny_run[0], tmp_path / "D")
    path = run_dir / "train-controller.json"
    record = json.loads(path.read_text())
    del record["config"]["controller"]["dream_dropout"], record["metrics"]["evaluator"]
    record["seconds"] = 1234.5
    path.write_text(json.dumps(record))
    proc = wm_fast("train-controller", "--run-dir", "D", "--quiet", cwd=run_dir.parent)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(path.read_text())["seconds"] == 1234.5


def test_evaluate_command_with_other_seeds(tiny_run):
    run_dir, _ = tiny_run
    proc = wm_fast("evaluate", "--run-dir", "D", "--episodes", "1", "--seed-start", "777",
                   "--no-video", "--quiet", cwd=run_dir.parent)
    assert proc.returncode == 0, proc.stderr
    ev = json.loads((run_dir / "evaluate.json").read_text())
    assert ev["seeds"] == [777] and len(ev["returns"]) == 1


@pytest.mark.parametrize("args,message", [
    (("run", "--preset", "huge", "--run-dir", "X"), "unknown preset 'huge'"),
    (("run", "--env", "pong", "--preset", "tiny", "--run-dir", "X"), "unknown environment 'pong'"),
    (("train-rnn", "--run-dir", "X", "--preset", "tiny"), "train-rnn needs latent files"),
    (("collect", "--run-dir", "X", "--preset", "tiny", "--episodes", "0"), "collect.episodes must be positive"),
    (("collect", "--run-dir", "X", "--env", "cartpole", "--preset", "paper"), "unknown preset 'paper' for cartpole"),
    (("collect", "--run-dir", "X", "--preset", "tiny", "--env-backend", "gym"), "unknown env backend 'gym'"),
])
def test_cli_errors_are_clear(tmp_path, args, message):
    proc = wm_fast(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_config_errors():
    with pytest.raises(ConfigError, match="unknown preset"):
        get_preset("nope")
    with pytest.raises(ConfigError, match="unknown environment"):
        get_preset("tiny", env="doom2")


@pytest.mark.parametrize("section,field", [("rnn", "dropout"), ("controller", "dream_dropout")])
def test_dropout_rates_are_checked(section, field):
    from wm_fast.config import validate

    cfg = get_preset("tiny")
    setattr(getattr(cfg, section), field, 0.1)
    validate(cfg)
    for bad in (1.0, -0.05, float("nan")):
        setattr(getattr(cfg, section), field, bad)
        with pytest.raises(ConfigError, match=rf"{section}\.{field} must be in \[0, 1\)"):
            validate(cfg)


def test_python_api_as_in_the_readme(tmp_path):
    import wm_fast

    cfg = wm_fast.get_preset("tiny", env="carracing")
    cfg.evaluate.video = False
    run = wm_fast.Run(tmp_path / "api", cfg, progress=False)
    run.collect()
    run.train_vae()
    run.encode()
    run.train_rnn()
    run.train_controller()
    result = run.evaluate()
    assert len(result["returns"]) == cfg.evaluate.episodes
    assert result["mean"] == pytest.approx(sum(result["returns"]) / len(result["returns"]))
    with pytest.raises(wm_fast.ConfigError, match="was made with other settings"):
        other = wm_fast.get_preset("tiny")
        other.vae.epochs = 5
        wm_fast.Run(tmp_path / "api", other, progress=False)
    assert wm_fast.Run(tmp_path / "api", progress=False).cfg == cfg  # the saved config is intact


def test_summarize_names_command_commit_and_machine(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    out = tmp_path / "summary.json"
    proc = wm_fast("summarize", "--run-dir", "D", "--json-out", str(out), cwd=run_dir.parent)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(out.read_text())
    assert summary["command"].startswith("wm-fast run --env carracing --preset tiny")
    assert summary["commit"] and summary["machine"]
    ev = json.loads((run_dir / "evaluate.json").read_text())
    assert summary["real"]["returns"] == ev["returns"]
    assert "| carracing | tiny |" in out.with_suffix(".md").read_text()
    for stage, figures in summary["stages"].items():  # each stage's wall time, not a metric of the same name
        assert figures["seconds"] == round(json.loads((run_dir / f"{stage}.json").read_text())["seconds"], 1), stage


def test_summarize_a_named_controller_with_its_dream_search(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    proc = wm_fast("evaluate", "--run-dir", "D", "--controller", "dream", "--episodes", "1", "--seed-start", "778",
                   "--no-video", "--quiet", cwd=run_dir.parent)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "named.json"
    proc = wm_fast("summarize", "--run-dir", "D", "--controller", "dream", "--json-out", str(out), cwd=run_dir.parent)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(out.read_text())
    assert summary["real"]["seeds"] == [778] and summary["real"]["controller"] == "dream"
    cfg = get_preset("tiny", env="carracing").controller
    search = summary["dream_search"]
    assert (search["popsize"], search["rollouts"], search["generations"]) == (cfg.popsize, cfg.rollouts,
                                                                            cfg.generations)
    md = out.with_suffix(".md").read_text()
    assert "controller named (dream)" in md and f"population {cfg.popsize} x {cfg.rollouts} dreams" in md
    proc = wm_fast("summarize", "--run-dir", "D", "--controller", "real", "--json-out", str(out), cwd=run_dir.parent)
    assert proc.returncode != 0 and "evaluate-real.json is missing" in proc.stderr


def test_summary_names_the_settings_changed_from_the_preset(tmp_path):
    from wm_fast.report import preset_edits

    cfg = get_preset("tiny", env="doom")
    cfg.rnn.epochs, cfg.controller.done_threshold, cfg.collect.workers = 9, 0.25, 7  # workers: placement only
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()))
    assert preset_edits(tmp_path / "config.json") == ["rnn.epochs=9", "controller.done_threshold=0.25"]
    cfg.preset = "my-own"
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()))
    assert preset_edits(tmp_path / "config.json") is None


def test_summary_lists_the_restarts_and_the_one_chosen():
    from wm_fast.report import _dream_search, _dream_search_lines

    config = {"controller": {"popsize": 8, "rollouts": 2, "temperature": 1.0, "dream_dropout": 0.1, "restarts": 3,
                             "seed": 5}}
    metrics = {"generations": 4, "evals": [{"generation": 4, "mean_solution_return": 12.5}], "restart": 2,
               "restart_returns": [10.0, 11.0, 12.25], "restart_rollouts": 64}
    lines = _dream_search_lines(_dream_search(config, metrics))
    assert "| 2 (chosen) | 12.2 |" in lines and "| 0 | 10.0 |" in lines
    assert any("CMA-ES seeds 5..7" in line and "same 64 fresh dreams" in line for line in lines)
    assert any("4: 12.5" in line for line in lines)


def test_git_commit_dirty_only_for_code(tmp_path):
    """Results written by a run do not make the commit '-dirty'; a changed source file does."""
    import shutil

    from wm_fast.provenance import git_commit

    if shutil.which("git") is None:
        pytest.skip("needs git")
    repo = tmp_path / "repo"
    pkg = repo / "python" / "wm_fast"
    pkg.mkdir(parents=True)
    (pkg / "threads.py").write_text("x = 1\n")
    (repo / "results").mkdir()
    (repo / "results" / "r.md").write_text("old\n")
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=repo, check=True)
    clean = git_commit(pkg)
    assert clean != "unknown" and not clean.endswith("-dirty")
    (repo / "results" / "r.md").write_text("new\n")
    assert git_commit(pkg) == clean
    (pkg / "threads.py").write_text("x = 2\n")
    assert git_commit(pkg) == clean + "-dirty"


def test_results_pair_names_command_commit_and_machine(tmp_path):
    """write_results writes OUT.json and OUT.md ending with the provenance line, and refuses a summary without it."""
    import json

    from wm_fast.provenance import write_results

    summary = {"command": "bash x.sh", "commit": "abc1234", "machine": "CPU, 2 cpus", "rows": [1]}
    text = write_results(tmp_path / "r", summary, ["| a |", "|---|", "| 1 |"])
    assert (tmp_path / "r.md").read_text() == text and text.startswith("| a |")
    assert text.endswith("Command: `bash x.sh`; commit abc1234; CPU, 2 cpus.\n")
    assert json.loads((tmp_path / "r.json").read_text()) == summary
    with pytest.raises(ValueError, match="commit"):
        write_results(tmp_path / "s", {**summary, "commit": ""}, [])
    assert not (tmp_path / "s.json").exists()


def test_every_config_field_is_a_flag_with_the_runs_value_as_default(tiny_run, capsys):
    """The CLI's options come from the config dataclasses, defaults from the run's config.json."""
    import dataclasses

    from wm_fast.cli import main
    from wm_fast.config import RNNConfig

    run_dir, _ = tiny_run
    with pytest.raises(SystemExit):
        main(["train-rnn", "--run-dir", str(run_dir), "--help"])
    text = capsys.readouterr().out
    for f in dataclasses.fields(RNNConfig):
        assert f"--{f.name.replace('_', '-')}" in text, f.name
    assert "(default: 32)" in text  # the tiny run's rnn.hidden, not the class default 256
    assert "Mixture components K." in text  # the field's docstring is its help
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    assert "--collect.episodes" in text and "--iterate.run-rounds" in text


def test_a_run_made_before_a_config_field_existed_is_still_complete(tiny_run, tmp_path):
    """Fields added later default to what the code did before: older stage records still match."""
    import shutil

    import wm_fast
    from wm_fast.pipeline import load_config

    d = shutil.copytree(tiny_run[0], tmp_path / "D")
    record = json.loads((d / "train-rnn.json").read_text())
    assert "quality_z_nll" in record["metrics"] and record["metrics"]["quality_on"] == "training"
    for key in ("holdout", "mean_mse_weight", "dropout"):
        del record["config"]["rnn"][key]
    (d / "train-rnn.json").write_text(json.dumps(record))
    controller = json.loads((d / "train-controller.json").read_text())
    del controller["config"]["controller"]["dream_dropout"]
    (d / "train-controller.json").write_text(json.dumps(controller))
    run = wm_fast.Run(d, load_config(d / "config.json"), progress=False)
    assert run.is_complete("train-rnn") and run.is_complete("train-controller")
    record["config"]["rnn"]["hidden"] += 1  # a changed field is still refused
    (d / "train-rnn.json").write_text(json.dumps(record))
    with pytest.raises(ConfigError, match="rnn.hidden"):
        run.is_complete("train-rnn")


def test_a_run_dir_that_is_a_file_is_a_one_line_error(tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    proc = wm_fast("collect", "--run-dir", "afile", "--preset", "tiny", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "wm-fast: error: the run directory afile is an existing file, not a folder; "
        "name a new or existing folder with --run-dir"]


def test_run_with_a_real_stage_evaluates_the_real_controller(tmp_path):
    proc = wm_fast("run", "--preset", "tiny", "--run-dir", "D", "--real.run-mode", "real", "--real.generations", "1",
                   "--real.popsize", "4", "--real.rollouts", "1", "--real.eval-rollouts", "2", "--real.patience", "5",
                   "--real.workers", "1", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    d = tmp_path / "D"
    assert json.loads((d / "train-controller-real.json").read_text())["complete"]
    ev = json.loads((d / "evaluate.json").read_text())
    assert ev["controller"] == "real" and ev["controller_file"].endswith("controller_real/controller.pt")
    summary_out = tmp_path / "s.json"
    assert wm_fast("summarize", "--run-dir", "D", "--json-out", str(summary_out), cwd=tmp_path).returncode == 0
    s = json.loads(summary_out.read_text())
    assert "train-controller-real" in s["stages"] and s["real"]["controller"] == "real"


def test_the_committed_quick_controller_still_drives(tmp_path):
    """results/carracing_quick/ as committed, re-scored by `wm-fast evaluate` on 2 seeds no stage used."""
    import shutil

    src = Path(__file__).resolve().parents[1] / "results" / "carracing_quick"
    if not (src / "config.json").exists():
        pytest.skip("results/carracing_quick/ not written yet")
    d = shutil.copytree(src, tmp_path / "D")
    proc = wm_fast("evaluate", "--run-dir", "D", "--episodes", "2", "--seed-start", "80000", "--no-video",
                   "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    ev = json.loads((d / "evaluate.json").read_text())
    assert ev["controller"] == "real" and ev["env_backend"] == "gymnasium" and ev["mean"] > 200  # random: ~ -70


def test_the_committed_headline_controller_still_drives(tmp_path):
    """results/carracing_headline/ as committed (an unfinished chain: its controller.pt is the best
    evaluated CMA mean so far), re-scored by `wm-fast evaluate` on 2 seeds no stage used."""
    import shutil

    src = Path(__file__).resolve().parents[1] / "results" / "carracing_headline"
    if not (src / "config.json").exists():
        pytest.skip("results/carracing_headline/ not written yet")
    d = shutil.copytree(src, tmp_path / "D")
    proc = wm_fast("evaluate", "--run-dir", "D", "--controller", "real", "--episodes", "2", "--seed-start", "81000",
                   "--no-video", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    ev = json.loads((d / "evaluate-real.json").read_text())
    assert ev["seeds"] == [81000, 81001] and ev["mean"] > 400  # held-out 808 ± 139 over 100; random: ~ -70
