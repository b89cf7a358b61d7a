"""dmpc's offline data: D4RL normalisation against the published constants, the dataset format and
episode boundaries, and a seconds-long SAC generation through the cache."""

from __future__ import annotations

import json

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


def test_generation_is_cached_with_its_metadata(tmp_path):
    spec = data.DataSpec(env="hopper", max_sac_steps=600, learning_starts=200, eval_every=300, eval_episodes=2,
                         medium_transitions=400, rollout_envs=2, target=1e9)
    sets, meta = data.load_or_generate(spec, tmp_path, log=lambda *_: None)
    assert meta["label"] == data.LABEL and meta["sac_steps"] == 600 and not meta["target_reached"]
    assert [p["step"] for p in meta["eval_curve"]] == [300, 600]
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
