"""dmpc's offline data: D4RL normalisation against the published constants, the dataset format and
episode boundaries, and a seconds-long SAC generation through the cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gymnasium")
pytest.importorskip("sbx")

from paper_dmpc import data  # noqa: E402


def test_normalised_score_uses_d4rl_reference_returns():
    # d4rl/infos.py: hopper random -20.272305, expert 3234.3
    assert data.normalized_score("hopper", -20.272305) == pytest.approx(0.0)
    assert data.normalized_score("hopper", 3234.3) == pytest.approx(100.0)
    assert data.normalized_score("hopper", 1000.0) == pytest.approx(100 * 1020.272305 / 3254.572305)
    assert data.normalized_score("halfcheetah", 12135.0) == pytest.approx(100.0)
    assert data.normalized_score("walker2d", 1.629008) == pytest.approx(0.0)
    np.testing.assert_allclose(data.normalized_score("walker2d", [1.629008, 4592.3]), [0, 100])
    with pytest.raises(ValueError, match="unknown environment 'ant'"):
        data.normalized_score("ant", 1.0)
    with pytest.raises(ValueError, match="unknown environment 'ant'"):
        data.DataSpec(env="ant")


def test_episode_boundaries_follow_terminals_and_timeouts():
    d = {"rewards": np.zeros(10), "terminals": np.zeros(10, bool), "timeouts": np.zeros(10, bool)}
    d["terminals"][2] = True
    d["timeouts"][6] = True
    assert data.episodes(d) == [slice(0, 3), slice(3, 7), slice(7, 10)]


def test_rollout_gives_d4rl_keys_in_episode_order():
    rng = np.random.default_rng(0)
    out, returns = data.rollout(lambda o, d: rng.uniform(-1, 1, (len(o), 3)), "hopper", 500, 0, False, n_envs=4)
    assert set(out) == set(data.KEYS) and len(out["rewards"]) == 500
    assert out["observations"].shape == (500, 11) and out["actions"].shape == (500, 3)
    assert out["observations"].dtype == np.float32 and out["terminals"].dtype == bool
    for ep in data.episodes(out)[:-1]:  # inside an episode, each next observation is the following one
        np.testing.assert_array_equal(out["next_observations"][ep][:-1], out["observations"][ep][1:])
    assert len(returns) == out["terminals"].sum()  # random hoppers fall: every finished episode terminated


@pytest.mark.slow
def test_generation_is_cached_with_its_metadata(tmp_path, monkeypatch):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # the child's temporary folder
    spec = data.DataSpec(env="hopper", learner="crossq", max_steps=600, learning_starts=200, eval_every=300,
                         eval_episodes=2, medium_transitions=400, rollout_envs=2, target=1e9, update_every=100)
    said = []
    sets, meta = data.load_or_generate(spec, tmp_path, log=said.append)  # in a pinned child process
    assert [line.split(":")[0] for line in said] == ["hopper CrossQ step 300", "hopper CrossQ step 600"]  # progress
    assert meta["label"] == data.LABEL and meta["learner_steps"] == 600 and not meta["target_reached"]
    assert meta["learner"] == "CrossQ"
    assert meta["generated_on"]["cpu"] and meta["content_sha256"]["medium"] == data.content_sha256(sets["medium"])
    assert [p["step"] for p in meta["eval_curve"]] == [300, 600]
    assert not list(scratch.glob("SB3-*"))  # the learner logs nowhere (SB3's default leaves a folder per run)
    replay = sets["medium-replay"]
    assert len(replay["rewards"]) == 600 and len(sets["medium"]["rewards"]) == 400
    # the replay buffer in insertion order: consecutive transitions chain inside an episode
    ep = data.episodes(replay)[0]
    np.testing.assert_allclose(replay["next_observations"][ep][:-1], replay["observations"][ep][1:])
    assert not (replay["terminals"] & replay["timeouts"]).any()
    folder = tmp_path / f"hopper-{spec.key()}"
    assert json.loads((folder / "meta.json").read_text())["sha256"].keys() == {"medium", "medium-replay"}
    again, meta2 = data.load_or_generate(spec, tmp_path, log=lambda *_: None)  # from the cache
    np.testing.assert_array_equal(again["medium"]["actions"], sets["medium"]["actions"])
    assert meta2 == json.loads((folder / "meta.json").read_text())


def test_each_robot_has_its_learner_and_each_learner_its_evaluation_interval():
    assert [data.DataSpec(env=e).learner for e in ("hopper", "halfcheetah", "walker2d")] == ["sac", "sac", "crossq"]
    assert data.DataSpec(env="hopper").eval_every == 5000 and data.DataSpec(env="walker2d").eval_every == 1000
    given = data.DataSpec(env="walker2d", learner="sac", eval_every=2000)
    assert (given.learner, given.eval_every) == ("sac", 2000)
    # the key names what was resolved: the default and the same spelled out are the same data
    assert data.DataSpec(env="hopper").key() == data.DataSpec(env="hopper", learner="sac", eval_every=5000).key()


@pytest.mark.slow
def test_sac_is_the_other_learner_and_other_names_are_refused():
    spec = data.DataSpec(env="hopper", learner="sac", max_steps=300, learning_starts=100, eval_every=300,
                         eval_episodes=1, medium_transitions=100, rollout_envs=2, target=1e9, update_every=100)
    said = []
    sets, meta = data.generate(spec, log=said.append)  # in this process
    assert said[0].startswith("hopper SAC step 300:") and meta["learner"] == "SAC" and meta["learner_steps"] == 300
    assert len(sets["medium-replay"]["rewards"]) == 300
    assert spec.key() != data.DataSpec(**{**asdict(spec), "learner": "crossq"}).key()  # another learner, other data
    with pytest.raises(ValueError, match="unknown learner 'ppo'; known: crossq, sac"):
        data.DataSpec(learner="ppo")


def test_d4rl_and_minari_files_load_by_path(tmp_path):
    h5py = pytest.importorskip("h5py")
    obs = np.arange(8, dtype=np.float32)[:, None].repeat(2, 1)
    # D4RL without next_observations: episode A = steps 0-2 (terminal at 2), B = 3-5 (timeout at 5), C = 6-7 (cut)
    with h5py.File(tmp_path / "d4rl.hdf5", "w") as f:
        f["observations"], f["actions"] = obs, np.ones((8, 1), np.float32)
        f["rewards"] = np.arange(8, dtype=np.float32)
        f["terminals"] = np.array([0, 0, 1, 0, 0, 0, 0, 0], bool)
        f["timeouts"] = np.array([0, 0, 0, 0, 0, 1, 0, 0], bool)
    d = data.load_path(tmp_path / "d4rl.hdf5")
    # dropped: step 5 (a timeout: its successor is not in the file) and step 7 (the file's last)
    np.testing.assert_array_equal(d["rewards"], [0, 1, 2, 3, 4, 6])
    np.testing.assert_array_equal(d["next_observations"][:, 0], [1, 2, 2, 4, 5, 7])
    assert data.episodes(d) == [slice(0, 3), slice(3, 5), slice(5, 6)]
    assert d["terminals"].tolist() == [0, 0, 1, 0, 0, 0] and d["timeouts"].tolist() == [0, 0, 0, 0, 1, 1]
    # Minari: one group per episode with T + 1 observations
    folder = tmp_path / "hopper-medium-v0"
    (folder / "data").mkdir(parents=True)
    with h5py.File(folder / "data" / "main_data.hdf5", "w") as f:
        for i, (t, term) in enumerate(((3, True), (2, False))):
            g = f.create_group(f"episode_{i}")
            g["observations"] = np.arange(t + 1, dtype=np.float64)[:, None] + 10 * i
            g["actions"], g["rewards"] = np.zeros((t, 1)), np.ones(t)
            g["terminations"] = np.array([0] * (t - 1) + [term], bool)
            g["truncations"] = np.array([0] * (t - 1) + [not term], bool)
    m = data.load_path(folder)
    np.testing.assert_array_equal(m["next_observations"][:, 0], [1, 2, 3, 11, 12])
    assert data.episodes(m) == [slice(0, 3), slice(3, 5)] and m["observations"].dtype == np.float32
    with pytest.raises(FileNotFoundError, match="no dataset at"):
        data.load_path(tmp_path / "nothing.hdf5")


def test_a_weakened_foot_scales_only_that_torque():
    for env, foot in (("hopper", 2), ("walker2d", 5)):
        e = data.make_env(env, foot_scale=0.3)
        e.reset(seed=0)
        a = np.full(e.action_space.shape, 0.5, np.float32)
        e.step(a)
        expected = a.copy()
        expected[foot] *= 0.3
        np.testing.assert_allclose(e.unwrapped.data.ctrl, expected, rtol=1e-6)
    with pytest.raises(ValueError, match="no foot to weaken in 'halfcheetah'"):
        data.make_env("halfcheetah", foot_scale=0.5)


def test_split_keeps_whole_episodes_in_order():
    d = {"rewards": np.arange(10.0), "terminals": np.zeros(10, bool), "timeouts": np.zeros(10, bool)}
    d["terminals"][[2, 6]] = True  # episodes 0-2, 3-6, 7-9
    train, held = data.split_episodes(d, {1})
    np.testing.assert_array_equal(train["rewards"], [0, 1, 2, 7, 8, 9])
    np.testing.assert_array_equal(held["rewards"], [3, 4, 5, 6])
    assert data.episodes(train) == [slice(0, 3), slice(3, 6)]


@pytest.mark.slow
def test_the_same_spec_makes_the_same_bytes_whatever_vector_units_the_cpu_has(tmp_path):
    """A CPU without AVX-512 is stood in for by capping a process's kernels at AVX2. Pinned, generation
    makes identical data from either; unpinned on a CPU with AVX-512, JAX's kernels follow the CPU and the
    data differ (the hazard the pin removes)."""
    if not data.pinned_isa():
        pytest.skip("kernels are pinned on x86-64 only")
    spec = data.DataSpec(env="hopper", max_steps=800, learning_starts=400, eval_every=800, eval_episodes=1,
                         medium_transitions=200, rollout_envs=2, target=1e9, update_every=200)
    host = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_MAX_CPU_ISA", "XLA_FLAGS")}
    avx2_only = {**host, "ONEDNN_MAX_CPU_ISA": "AVX2", "XLA_FLAGS": "--xla_cpu_max_isa=AVX2"}

    def content(folder):
        return json.loads((folder / "meta.json").read_text())["content_sha256"]

    def pinned(name, env):
        data.generate_isolated(spec, tmp_path / name, log=lambda *_: None, env=env)

    def unpinned():
        subprocess.run([sys.executable, "-m", "paper_dmpc.data", json.dumps(asdict(spec)), str(tmp_path / "unpinned")],
                       env=host, check=True, capture_output=True)

    avx512 = "avx512f" in Path("/proc/cpuinfo").read_text()
    with ThreadPoolExecutor(3) as pool:  # three child processes at once (each is mostly JAX's start-up)
        done = [pool.submit(pinned, "host", host), pool.submit(pinned, "avx2_only", avx2_only)]
        done += [pool.submit(unpinned)] if avx512 else []
        for f in done:
            f.result()
    assert content(tmp_path / "host") == content(tmp_path / "avx2_only")
    if avx512:
        assert content(tmp_path / "unpinned") != content(tmp_path / "host")


@pytest.mark.slow
def test_a_generation_stopped_while_it_runs_stops_its_child(tmp_path):
    spec = data.DataSpec(env="hopper", max_steps=50_000, learning_starts=200, eval_every=200, eval_episodes=1,
                         medium_transitions=200, rollout_envs=2, target=1e9, update_every=100)

    def stop(line):
        raise KeyboardInterrupt  # Ctrl-C (or SIGTERM, which the runner turns into it) at the first progress line

    with pytest.raises(KeyboardInterrupt):
        data.generate_isolated(spec, tmp_path / "d", log=stop)
    mine = [p for p in Path("/proc").glob("[0-9]*") if str(tmp_path / "d") in _cmdline(p)]
    assert not mine and not (tmp_path / "d" / "meta.json").exists()


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
