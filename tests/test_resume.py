"""A run cut off mid-phase (killed, preempted) continues with `paperclub run --resume RUN_DIR`: no finished
seed or phase runs again, and the run keeps its id."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from functools import partial

import pytest

from runners.cli import main


def _start(harness_env, *args: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "runners.cli", "run", "toy", "--tier", "small", "--out", "cut", "--no-publish", *args]
    return subprocess.Popen(cmd, cwd=harness_env, env=os.environ.copy(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(path, proc, timeout: float = 60.0) -> None:
    t0 = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_run_killed_mid_phase_resumes_without_redoing_finished_work(harness_env, capsys, sig):
    proc = _start(harness_env, "sleep_s=2")
    # seed 1 has finished its first phase (its draws are kept) and sleeps in its second: cut it off there
    _wait_for(harness_env / "cut" / "seed_1" / "phases" / "draw.pkl", proc)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    cut = json.loads((harness_env / "cut" / "summary.json").read_text())
    assert cut["status"] == "interrupted" and cut["seeds_done"] == [0]
    assert main(["run", "--resume", "cut", "--no-publish"]) == 0
    summary = json.loads((harness_env / "cut" / "summary.json").read_text())
    assert summary["status"] == "pass" and summary["seeds_done"] == [0, 1, 2]
    assert summary["run_uid"] == cut["run_uid"] and summary["started_at"] == cut["started_at"]
    assert summary["wall_s"] >= cut["wall_s"] and "seeds [0] were read back" in " ".join(summary["notes"])
    # every seed drew once: seed 0 was read back, seed 1's draws were loaded, seed 2 ran whole
    for seed in (0, 1, 2):
        assert (harness_env / "cut" / f"seed_{seed}" / "draws.log").read_text() == f"{seed}\n"
        assert not (harness_env / "cut" / f"seed_{seed}" / "phases").exists()  # kept results go once it finishes
    rows = json.loads((harness_env / "cut" / "seed_1" / "phases.json").read_text())["phases"]
    assert [(r["phase"], r.get("resumed", False)) for r in rows] == [("draw", True), ("wait", False),
                                                                     ("summarise", False)]
    # the resumed run's numbers are the uninterrupted run's
    assert main(["run", "toy", "--tier", "small", "--out", "whole", "--no-publish", "sleep_s=0"]) == 0
    whole = json.loads((harness_env / "whole" / "summary.json").read_text())
    assert summary["samples"] == whole["samples"]
    assert [c["status"] for c in summary["claims"]] == [c["status"] for c in whole["claims"]]


def test_resume_takes_only_cut_off_runs_and_nothing_else(harness_env, capsys):
    assert main(["run", "toy", "--tier", "smoke", "--out", "done", "--no-publish"]) == 0
    capsys.readouterr()
    assert main(["run", "--resume", "done"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ended 'pass': only an interrupted or crashed run is resumed" in err[0]
    assert main(["run", "toy", "--resume", "done"]) == 2
    assert "--resume RUN_DIR takes the run's own suite" in capsys.readouterr().err
    assert main(["run", "--resume", "nowhere"]) == 2
    assert "run directory not found: nowhere" in capsys.readouterr().err


class _Saved:
    """A checkpoint kept in memory (through torch.save, as on disk), due at every step."""

    def __init__(self):
        self.blob, self.saves = None, 0

    def load(self):
        import io

        import torch

        return None if self.blob is None else torch.load(io.BytesIO(self.blob), weights_only=False)

    def due(self) -> bool:
        return True

    def save(self, state) -> None:
        import io

        import torch

        buf = io.BytesIO()
        torch.save(state, buf)
        self.blob, self.saves = buf.getvalue(), self.saves + 1


def _cut_after(k: int):
    """A step iterator that stops the loop (as Ctrl-C or a kill would) before its k-th step."""
    def wrap(steps):
        for i, step in enumerate(steps):
            if i == k:
                raise KeyboardInterrupt("cut off")
            yield step
    return wrap


def _resumed_equals_whole(make, train, k: int) -> tuple:
    """Train whole; train cut off after k steps and again from its checkpoint; return both results."""
    whole = train(make(), None, lambda it: it)
    saved = _Saved()
    with pytest.raises(KeyboardInterrupt):
        train(make(), saved, _cut_after(k))
    assert saved.saves == k - 1  # saved before each step after the first
    return whole, train(make(), saved, lambda it: it)


def test_dmpc_training_resumed_from_its_checkpoint_is_the_uninterrupted_training():
    torch = pytest.importorskip("torch")
    import numpy as np

    from paper_dmpc import models

    rng = np.random.default_rng(0)
    chunks = models.Chunks(rng.normal(size=(64, 5)).astype(np.float32), rng.uniform(-1, 1, (64, 4, 2)).astype(np.float32),
                           rng.normal(size=(64, 4, 5)).astype(np.float32), rng.normal(size=64).astype(np.float32))
    cfg = models.ModelConfig(horizon=4, hidden=32, layers=2, train_steps=20)

    def make():
        torch.manual_seed(0)
        return models.Dynamics(cfg, 5, 2, models.Normalizer(chunks))

    def train(model, checkpoint, wrap):
        return models.train(model, chunks, models.TrainConfig(steps=9, batch=16, seed=3), wrap, checkpoint)

    (ema_a, losses_a), (ema_b, losses_b) = _resumed_equals_whole(make, train, 5)
    assert losses_a == losses_b and len(losses_b) == 9
    for (name, a), b in zip(ema_a.state_dict().items(), ema_b.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_lewm_training_resumed_from_its_checkpoint_is_the_uninterrupted_training():
    torch = pytest.importorskip("torch")
    import numpy as np

    from paper_lewm.config import ModelConfig
    from paper_lewm.train import TrainConfig, Windows
    from paper_lewm.train import train as lewm_train

    rng = np.random.default_rng(0)
    data = Windows.build(rng.integers(0, 255, (6, 21, 16, 16, 3), dtype=np.uint8), rng.uniform(-1, 1, (6, 20, 2)),
                         frameskip=5, span=4)
    model = ModelConfig(image_size=16, channels=(8, 16), dim=16, projector_hidden=32, layers=1, heads=2,
                        head_dim=8, mlp=32)
    cfg = TrainConfig(model=model, steps=7, batch=4, directions=16, seed=2)

    def train(_, checkpoint, wrap):
        return lewm_train(cfg, data, wrap, checkpoint)

    (model_a, hist_a), (model_b, hist_b) = _resumed_equals_whole(lambda: None, train, 4)
    assert hist_a["loss"] == hist_b["loss"] and len(hist_b["loss"]) == 7
    for (name, a), b in zip(model_a.state_dict().items(), model_b.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def _checkpointed_job(step: int) -> str:
    """A training job's checkpoint, made where the job runs."""
    from runners.phases import Checkpoint

    ckpt = Checkpoint("train_member", every_s=0)
    ckpt.save({"step": step})
    return str(ckpt.path)


def test_training_in_a_pool_worker_checkpoints_into_the_seed(tmp_path):
    """dmpc's models train in spawned workers with ``workers > 1``: their checkpoints go to the recorded
    seed's folder (``phases.checkpoints_in``, the pool's initializer), where a resumed seed finds them."""
    import torch

    from runners import phases
    from runners.jobs import JobPool

    with phases.recording(tmp_path / "seed_0"):
        folder = phases.kept_folder()
        with JobPool("process", 1, initializer=partial(phases.checkpoints_in, folder)) as pool:
            path = pool.submit(_checkpointed_job, 7).result()
        assert path == str(folder / "train_member.ckpt.pkl")
        assert phases.Checkpoint("train_member").load() == {"step": 7}  # the seed's process reads it
        assert torch.load(path, weights_only=False) == {"step": 7}
    with JobPool("process", 1) as pool:  # a worker of no recorded seed keeps nothing
        assert pool.submit(_checkpointed_job, 1).result() == "None"
    # run inline (one worker), the initializer's folder is the seed's own, and ends with it
    with phases.recording(tmp_path / "seed_1"):
        inline = JobPool("inline", 1, initializer=partial(phases.checkpoints_in, phases.kept_folder()))
        assert inline.submit(_checkpointed_job, 2).result().startswith(str(tmp_path / "seed_1"))
    assert _checkpointed_job(3) == "None"
