"""Push-T (paper_lewm.pusht): physics contract, DINO-WM's success criterion, rendering, the data
policy and the evaluation filter, each against hand-set states."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pymunk")
pytest.importorskip("PIL")

from paper_lewm import plan  # noqa: E402
from paper_lewm.pusht import STATE_DIM, PushT, generate  # noqa: E402

ENV = PushT(size=32)


def state(agent=(100, 100), block=(300, 300), angle=0.0, vel=(0, 0)):
    return np.array([*agent, *block, angle, *vel], dtype=float)


def test_free_agent_moves_towards_its_relative_target_and_the_block_stays():
    s = state(agent=(100, 100), block=(300, 300))
    out = ENV.step(s[None], np.array([[1.0, 0.0]]))[0]
    # PD towards x = 200: moving right, not past the target, not vertically; the block untouched
    assert 100 < out[0] < 200 and out[1] == pytest.approx(100) and out[5] > 0
    np.testing.assert_allclose(out[2:5], s[2:5])
    # a step is a function of (state, action): the same inputs give the same output
    np.testing.assert_array_equal(ENV.step(s[None], np.array([[1.0, 0.0]]))[0], out)
    # actions are clipped to [-1, 1]
    np.testing.assert_array_equal(ENV.step(s[None], np.array([[5.0, 0.0]]))[0], out)


def test_pushing_moves_the_block_and_damping_stops_it():
    # at angle 0 the T's top bar spans x in [196, 316], y in [200, 230] (block origin at (256, 200));
    # the agent, above it, pushes +y
    s = state(agent=(256, 170), block=(256, 200))
    pushed = s[None]
    for _ in range(3):
        pushed = ENV.step(pushed, np.array([[0.0, 1.0]]))
    assert pushed[0, 3] > 210  # the block went +y
    rest = pushed.copy()
    rest[0, :2], rest[0, 5:] = (60, 60), 0  # the agent far from the block, at rest
    away = ENV.step(rest, np.array([[0.0, -1.0]]))  # it moves away: the block stays where it is
    np.testing.assert_allclose(away[0, 2:5], rest[0, 2:5], atol=1e-6)


def test_success_is_dino_wm_criterion():
    goal = state(agent=(100, 100), block=(300, 300), angle=0.5)
    near = state(agent=(110, 100), block=(300, 310), angle=0.5 + np.pi / 10)  # distance sqrt(200) < 20
    far = state(agent=(115, 100), block=(300, 315), angle=0.5)  # sqrt(450) > 20
    turned = state(agent=(100, 100), block=(300, 300), angle=0.5 + np.pi / 8)  # > pi/9
    wrapped = state(agent=(100, 100), block=(300, 300), angle=0.5 + 2 * np.pi - 0.1)
    got = ENV.success(np.stack([near, far, turned, wrapped]), goal[None])
    assert got.tolist() == [True, False, False, True]
    assert ENV.distance(near, goal) == pytest.approx(np.sqrt(200))


def test_render_draws_the_block_and_agent_where_the_state_says():
    s = state(agent=(72, 72), block=(300, 300))
    frame = ENV.render(s[None])[0]
    assert frame.shape == (32, 32, 3) and frame.dtype == np.uint8
    assert tuple(frame[4, 4]) == ENV.agent_rgb  # (72, 72) of 512 -> the centre of pixel (4, 4); rows are y
    assert tuple(frame[19, 18]) == ENV.block_rgb  # inside the top bar, (300, 310) -> (18.75, 19.4)
    assert tuple(frame[30, 2]) == (255, 255, 255)
    recoloured = ENV.render(s[None], (30, 170, 30))[0]
    assert tuple(recoloured[19, 18]) == (30, 170, 30) and tuple(recoloured[4, 4]) == ENV.agent_rgb
    assert ENV.render(np.stack([s, s])[None]).shape == (1, 2, 32, 32, 3)


def test_sampled_and_teleported_states_keep_the_agent_clear_of_the_block():
    rng = np.random.default_rng(0)
    s = ENV.sample_free(rng, 200)
    assert s.shape == (200, STATE_DIM) and ENV._clear(s).all()
    assert ((s[:, :2] >= 50) & (s[:, :2] <= 450)).all() and ((s[:, 2:4] >= 100) & (s[:, 2:4] <= 400)).all()
    t = ENV.teleport(s, rng)
    np.testing.assert_array_equal(t[:, :2], s[:, :2])
    assert ENV._clear(t).all() and not np.allclose(t[:, 2:5], s[:, 2:5])
    on_block = state(agent=(300, 310), block=(300, 300))
    assert not ENV._clear(on_block[None])[0]


def test_scripted_data_push_the_block_and_evaluation_keeps_pairs_where_it_must_move():
    data = generate(ENV, 12, 60, seed=3)
    pos, act = data["positions"], data["actions"]
    assert pos.shape == (12, 61, STATE_DIM) and act.shape == (12, 60, 2) and np.abs(act).max() <= 1
    moved = np.linalg.norm(pos[:, -1, 2:4] - pos[:, 0, 2:4], axis=-1)
    assert np.median(moved) > 20
    np.testing.assert_array_equal(generate(ENV, 12, 60, seed=3)["positions"], pos)  # seeded
    eps = plan.episodes_from(pos, 25, 30, seed=0, keep=ENV.block_moves)
    assert len(eps.start) == 30 and ENV.block_moves(eps.start, eps.goal).all()
    assert not ENV.success(eps.start, eps.goal).any()
    with pytest.raises(ValueError, match="pass the filter"):
        plan.episodes_from(pos, 25, 5, seed=0, keep=lambda s, g: np.zeros(len(s), bool))
