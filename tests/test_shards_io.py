"""Shard files on disk: compression, old uncompressed shards, truncation, disk space, strict JSON."""

from __future__ import annotations

import collections
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from wm_fast import shards
from wm_fast.data import count_frames, episode_frame_count
from wm_fast.shards import (
    check_disk_space,
    estimate_episode_bytes,
    load_episode,
    load_latents,
    save_episode,
    save_latents,
    shard_is_complete,
    shard_problem,
)
from wm_fast.storage import CorruptShardError, InsufficientDiskSpaceError, WmFastError, dumps_json

pytestmark = pytest.mark.filterwarnings("ignore:builtin type .* has no __module__ attribute:DeprecationWarning")


def strict_loads(text: str):
    """json.loads that rejects NaN, Infinity and -Infinity."""
    def refuse(token: str):
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def episode() -> dict:
    """A real CarRacing random-policy episode of 60 steps."""
    from wm_fast import envs
    from wm_fast.rollout import EpisodeRequest, RandomActor, run_episodes

    with envs.make_vec("carracing", 1, 60) as vec:
        ep = run_episodes(vec, [EpisodeRequest(4, keep=True)], RandomActor("brownian", 1, vec.action_low,
                                                                          vec.action_high))[0]
    return {"frames": ep.pop("observations"), **{k: ep[k] for k in ("actions", "rewards", "terminated",
                                                                     "truncated", "seed")}}


@pytest.fixture
def shard(episode, tmp_path) -> Path:
    path = tmp_path / "episode_000000.npz"
    save_episode(path, **episode)
    return path


def _latents(t: int = 20, z: int = 8) -> dict:
    rng = np.random.default_rng(0)
    return dict(mu=rng.standard_normal((t + 1, z)).astype(np.float32),
                logvar=rng.standard_normal((t + 1, z)).astype(np.float32),
                actions=rng.uniform(-1, 1, (t, 3)).astype(np.float32),
                rewards=rng.standard_normal(t).astype(np.float32),
                dones=np.zeros(t, np.float32), seed=7)


def _raw_npz(path: Path, arrays: dict) -> None:
    """What older versions wrote: plain, uncompressed np.savez."""
    np.savez(path, **{k: np.asarray(v) for k, v in arrays.items()})


# --------------------------------------------------------------------- compression


def test_episode_shard_is_compressed_npz(episode, shard):
    with zipfile.ZipFile(shard) as zf:
        infos = zf.infolist()
        assert sorted(i.filename for i in infos) == sorted(f"{k}.npy" for k in shards.EPISODE_KEYS)
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in infos)
    raw = episode["frames"].nbytes
    assert shard.stat().st_size < raw / 4  # measured ~8x on CarRacing frames
    with np.load(shard) as d:  # still a plain .npz
        np.testing.assert_array_equal(d["frames"], episode["frames"])
    ep = load_episode(shard)
    for k in shards.EPISODE_KEYS:
        np.testing.assert_array_equal(ep[k], episode[k], err_msg=k)
    assert episode_frame_count(shard) == len(episode["frames"]) == 61
    assert not list(shard.parent.glob("*.tmp")) and not list(shard.parent.glob(".*.tmp"))


def test_latent_file_is_compressed_npz(tmp_path):
    lat = _latents()
    path = tmp_path / "episode_000000.npz"
    save_latents(path, **lat)
    with zipfile.ZipFile(path) as zf:
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in zf.infolist())
    got = load_latents(path)
    for k in shards.LATENT_KEYS:
        np.testing.assert_array_equal(got[k], lat[k], err_msg=k)
    assert shard_is_complete(path, kind="latents")


def test_old_uncompressed_shards_still_load(episode, tmp_path):
    path = tmp_path / "episode_000000.npz"
    _raw_npz(path, episode)
    with zipfile.ZipFile(path) as zf:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
    ep = load_episode(path)
    for k in shards.EPISODE_KEYS:
        np.testing.assert_array_equal(ep[k], episode[k], err_msg=k)
    assert episode_frame_count(path) == 61 and count_frames([path], 2) == 31
    assert shard_is_complete(path) and shard_problem(path) is None

    lat = _latents()
    lpath = tmp_path / "latents.npz"
    _raw_npz(lpath, lat)
    np.testing.assert_array_equal(load_latents(lpath)["mu"], lat["mu"])

    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 10])
    assert not shard_is_complete(path)


def test_frame_count_reads_only_the_header(episode, shard):
    """episode_frame_count never decompresses frames: it works on a shard whose frame data is damaged."""
    with zipfile.ZipFile(shard) as zf:
        info = zf.getinfo("frames.npy")
    assert info.compress_size > 40_000  # the damage below lies far past the first few KB
    data = bytearray(shard.read_bytes())
    mid = info.header_offset + 100 + info.compress_size // 2
    data[mid : mid + 256] = b"\xff" * 256
    shard.write_bytes(bytes(data))
    assert episode_frame_count(shard) == 61
    with pytest.raises(CorruptShardError, match=str(shard)):  # never a bare zlib.error
        load_episode(shard)


# --------------------------------------------------------------------- truncated and broken shards


@pytest.mark.parametrize("cut", ["empty", "1 byte", "100 bytes", "half", "before central directory",
                                 "last 22 bytes", "last 10 bytes", "last byte"])
def test_truncated_shard_is_incomplete(shard, cut):
    data = shard.read_bytes()
    assert shard_is_complete(shard) and shard_problem(shard) is None
    with zipfile.ZipFile(shard) as zf:
        central_directory = zf.start_dir
    n = {"empty": 0, "1 byte": 1, "100 bytes": 100, "half": len(data) // 2,
         "before central directory": central_directory, "last 22 bytes": len(data) - 22,
         "last 10 bytes": len(data) - 10, "last byte": len(data) - 1}[cut]
    shard.write_bytes(data[:n])
    assert not shard_is_complete(shard)
    assert "truncated" in shard_problem(shard)
    with pytest.raises(CorruptShardError, match=str(shard)):
        load_episode(shard)


def test_truncated_latents_are_incomplete(tmp_path):
    path = tmp_path / "episode_000000.npz"
    save_latents(path, **_latents())
    data = path.read_bytes()
    for n in (0, len(data) // 2, len(data) - 10):
        path.write_bytes(data[:n])
        assert not shard_is_complete(path, kind="latents")


def test_shard_problem_names_missing_and_inconsistent_arrays(episode, tmp_path):
    assert shard_problem(tmp_path / "nope.npz") == "missing"
    assert not shard_is_complete(tmp_path / "nope.npz")

    no_seed = tmp_path / "no_seed.npz"
    _raw_npz(no_seed, {k: v for k, v in episode.items() if k != "seed"})
    assert shard_problem(no_seed) == "lacks arrays ['seed']"

    short = tmp_path / "short.npz"
    _raw_npz(short, {**episode, "actions": episode["actions"][:-1]})
    assert "actions must be (60, A)" in shard_problem(short)

    nan = tmp_path / "nan.npz"
    rewards = episode["rewards"].copy()
    rewards[3] = np.nan
    _raw_npz(nan, {**episode, "rewards": rewards})
    assert "NaN" in shard_problem(nan)


def test_shard_problem_finds_a_damaged_small_array(episode, shard):
    """The small arrays are read in full, so a damaged one is found (the CRC or zlib fails)."""
    with zipfile.ZipFile(shard) as zf:
        info = zf.getinfo("actions.npy")
    data = bytearray(shard.read_bytes())
    head = data[info.header_offset : info.header_offset + 30]
    start = info.header_offset + 30 + int.from_bytes(head[26:28], "little") + int.from_bytes(head[28:30], "little")
    assert info.compress_size > 200
    start += info.compress_size // 2  # inside the compressed data
    data[start : start + 16] = bytes(b ^ 0x55 for b in data[start : start + 16])
    shard.write_bytes(bytes(data))
    assert not shard_is_complete(shard)
    with pytest.raises(CorruptShardError, match=str(shard)):
        load_episode(shard)


# --------------------------------------------------------------------- disk space

Usage = collections.namedtuple("Usage", "total used free")


def test_estimate_is_conservative_for_carracing(shard):
    per_frame = (shard.stat().st_size) / 61
    est = estimate_episode_bytes(61)
    assert est / 61 > per_frame  # above what this real shard takes
    assert estimate_episode_bytes(1001) < 1001 * 12288 / 5  # but far below raw frames


def test_check_disk_space(monkeypatch, tmp_path):
    seen = []

    def fake_usage(free):
        def usage(path):
            seen.append(Path(path))
            return Usage(10**12, 0, free)
        return usage

    folder = tmp_path / "run" / "episodes"  # not created yet: its nearest existing parent is checked
    need = 10_000 * estimate_episode_bytes(1001)
    monkeypatch.setattr(shards.shutil, "disk_usage", fake_usage(need + 1))
    assert check_disk_space(folder, 10_000, 1001) == need
    assert seen[-1] == tmp_path and not folder.exists()
    assert 10_000 * 1001 * 2048 <= need <= 10_000 * 1001 * 2200
    assert check_disk_space(folder, 0, 1001) == 0

    monkeypatch.setattr(shards.shutil, "disk_usage", fake_usage(5 * 10**9))
    with pytest.raises(InsufficientDiskSpaceError) as info:
        check_disk_space(folder, 10_000, 1001)
    msg = str(info.value)
    assert isinstance(info.value, WmFastError)
    assert "20.7 GB" in msg and "5.0 GB free" in msg and str(folder) in msg
    assert "fewer episodes" in msg and "folder" in msg
    with pytest.raises(ValueError):
        check_disk_space(folder, -1, 1001)


# --------------------------------------------------------------------- strict JSON


def test_dumps_json_is_strict():
    obj = {"a": float("nan"), "b": [float("inf"), -float("inf"), 1.5], "c": (np.float32("nan"), np.int64(3)),
           "d": {"e": np.float64("inf"), "f": np.bool_(True)}}
    text = dumps_json(obj, indent=1)
    assert strict_loads(text) == {"a": None, "b": [None, None, 1.5], "c": [None, 3], "d": {"e": None, "f": True}}


def test_cli_collect_prints_strict_json_when_nothing_is_new(tmp_path, capsys):
    from wm_fast.cli import main

    args = ["collect", "--run-dir", str(tmp_path / "D"), "--preset", "tiny", "--workers", "1", "--quiet"]
    main(args)
    first = strict_loads(capsys.readouterr().out)
    assert first["metrics"]["collected_now"] == 4
    main(args)
    second = strict_loads(capsys.readouterr().out)
    assert second["metrics"]["collected_now"] == 0 and second["metrics"]["skipped_existing"] == 4
    assert second["metrics"]["mean_return"] is None  # NaN of zero episodes, as null
    strict_loads((tmp_path / "D" / "collect.json").read_text())
    for p in (tmp_path / "D" / "episodes").glob("episode_*.npz"):
        assert shard_is_complete(p)
