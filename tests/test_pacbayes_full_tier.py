"""The full tier's code paths (CIFAR loader, CNN, GP on CIFAR classes) on CPU with tiny stand-ins."""

from __future__ import annotations

import json
import pickle
import tarfile

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from paper_pacbayes import data  # noqa: E402
from runners.cli import main  # noqa: E402
from runners.config import compose  # noqa: E402
from suites.pacbayes import PacBayesSuite  # noqa: E402


def fake_cifar10(root, per_batch=30):
    """A CIFAR-10 tarball in the real python-pickle layout, with tiny random batches."""
    rng = np.random.default_rng(0)
    folder = root / "src" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"labels": [i % 10 for i in range(per_batch)]}
        (folder / name).write_bytes(pickle.dumps(batch))
    tarball = root / "cifar-10-python.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    return tarball


def test_cifar_loader_reads_tarball_and_reports_places(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERCLUB_CACHE", str(tmp_path / "cache"))
    tarball = fake_cifar10(tmp_path)
    xtr, ytr, xte, yte = data.load_cifar("cifar10", tarball)
    assert xtr.shape == (150, 3072) and xte.shape == (30, 3072) and ytr[:3].tolist() == [0, 1, 2]
    with pytest.raises(data.DataNotFound) as err:
        data.load_cifar("cifar100", tmp_path / "nothing", download=False)
    msg = str(err.value)
    assert "nothing" in msg and "no system package ships cifar100" in msg and "download disabled" in msg


def test_full_tier_needs_cuda_and_is_skipped_on_cpu(harness_env, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the full tier would really run")
    assert main(["run", "pacbayes", "--tier", "full", "--out", "f", "--no-publish"]) == 3
    summary = json.loads((harness_env / "f" / "summary.json").read_text())
    assert summary["status"] == "skipped" and "cuda" in summary["reason"]


def _stand_in(tarball) -> list[str]:
    """The full tier on CPU at tiny sizes."""
    return ["device=cpu", f"data_dir={tarball}", "bound.hidden=4", "bound.subspace_dim=50", "bound.epochs=2",
            "bound.qat_epochs=1", "bound.widths=[4,8]", "bound.prior_epochs=1", "bound.batch_size=64",
            "gp.n=40", "gp.n_test=6", "dd.d_step=25", "bound.grid=[resnet20:4:50]", "bound.more_datasets=[digits]"]


def test_full_tier_rehearsal_on_a_cpu_stand_in(harness_env, monkeypatch):
    monkeypatch.setenv("PAPERCLUB_CACHE", str(harness_env / "cache"))
    assert main(["run", "pacbayes", "--tier", "full", "--rehearse", "--out", "r", *_stand_in(fake_cifar10(harness_env))]) == 0
    record = json.loads((harness_env / "r" / "rehearsal.json").read_text())
    assert [r["phase"] for r in record["phases"]] == ["polynomial", "double descent", "GP altered labels",
                                                      "compression bound"]
    bound = record["phases"][-1]
    # epochs: 3 bounds (true labels, random labels, width 8) x (1 + 1), the prior's 1 x 0.5 and the
    # data-dependent bound's 2 x 0.5; the real run: 3 x (2 + 1) + 1 x 0.5 + 3 x 0.5
    # and the search: 2 configurations x 2 datasets in place of the one true-label bound, (1 + 1) epochs each
    assert (bound["steps_rehearsed"], bound["steps_real"]) == (7.5 + 3 * 2, 11.0 + 3 * 3)
    assert bound["projected_seconds"] == pytest.approx(bound["seconds"] * 20 / 13.5)
    assert record["seeds"] == 5 and record["config"]["bound"]["epochs"] == 1  # the rehearsal's, not the real run's


def test_full_tier_code_path_on_cpu_stand_in(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERCLUB_CACHE", str(tmp_path / "cache"))
    tarball = fake_cifar10(tmp_path)
    cfg, _ = compose(PacBayesSuite, "full", [*_stand_in(tarball), "bound.epochs=1"])
    assert cfg.bound.arch == "cnn" and cfg.bound.dataset == "cifar10" and cfg.gp.classes == [0, 1]
    suite = PacBayesSuite()
    result = suite.run(cfg, 0, tmp_path)
    m = result.metrics
    assert 0 <= m["bound_cifar10"] <= 1 and m["n_train"] == 150 and m["gp_n_train"] == 30
    assert "bound_cifar10_ddp" in m and "bits_width_spread" in m
    # the data-independent bound is the best of the search, on each dataset; the data-dependent one apart
    searched = result.info["searched"]
    assert set(searched) == {"cifar10", "digits"} and all(set(s) == {"cnn:4:50", "resnet20:4:50"}
                                                          for s in searched.values())
    assert m["bound_cifar10"] == min(searched["cifar10"].values()) and m["bound_digits"] == min(searched["digits"].values())
    assert m["subspace_dim"] == 50 and m["bound_cifar10_ddp"] != m["bound_cifar10"]
    figures = suite.figures([result], cfg, tmp_path)
    assert len(figures) == 5 and all(p.stat().st_size > 0 for p in figures)
