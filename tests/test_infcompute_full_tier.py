"""The infcompute full tier: its paper-scale config, and its code paths (JSON-lines corpus shards,
bf16 autocast, grouped-query shapes, submitit fan-out) on CPU with tiny stand-ins."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("submitit")

from runners.cli import main  # noqa: E402
from runners.config import compose  # noqa: E402
from suites.infcompute import InfComputeSuite  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def gpu_script():
    spec = importlib.util.spec_from_file_location("gpu_infcompute", ROOT / "scripts" / "gpu_infcompute.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_full_tier_is_the_papers_setup_and_is_skipped_without_cuda(harness_env, capsys):
    cfg, _ = compose(InfComputeSuite, "full", ["data.source=/data/dclm", "data.tokenizer=/data/gpt2.tiktoken"])
    assert cfg.sizes == [512, 768, 1024, 2048] and cfg.paper_shapes and cfg.seq_len == 4096
    assert cfg.batch_size == 64 and cfg.precision == "bf16" and cfg.device == "cuda"
    assert cfg.wd_grid == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4] and cfg.epochs_grid == [1, 2, 4, 8, 16, 32, 64]
    assert cfg.executor == "submitit" and cfg.executor_options["cluster"] == "slurm"
    assert cfg.executor_options["gpus_per_node"] == 1
    # DCLM-baseline's shards from the hub by default, or a directory
    default, _ = compose(InfComputeSuite, "full", [])
    assert (default.data.source, default.data.pattern) == ("hf://datasets/mlfoundations/dclm-baseline-1.0", "*.jsonl.zstd")
    # the corpus' keys are paper_infcompute's CorpusSpec, nested as `data`: the old flat key names the new one
    assert main(["run", "infcompute", "--tier", "full", "--out", "m", "--no-publish", "corpus=/data/dclm"]) == 2
    assert "key 'corpus' of suite 'infcompute' is now 'data.source'" in capsys.readouterr().err
    if torch.cuda.is_available():
        return
    assert main(["run", "infcompute", "--tier", "full", "--out", "f", "--no-publish",
                 "data.source=/data/dclm", "data.tokenizer=bytes"]) == 3
    summary = json.loads((harness_env / "f" / "summary.json").read_text())
    assert summary["status"] == "skipped" and "cuda" in summary["reason"]


@pytest.mark.slow
def test_full_tier_code_path_on_cpu_stand_in(tmp_path, monkeypatch):
    zstandard = pytest.importorskip("zstandard")
    monkeypatch.setenv("PAPERCLUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PAPERCLUB_PROGRESS", "0")
    shards = tmp_path / "shards"
    shards.mkdir()
    words = ["the", "model", "reads", "text", "and", "predicts", "the", "next", "token", "of", "the", "text", "it", "reads"]
    for i in range(12):
        docs = [{"text": " ".join(words[(i + j) % len(words):] + words) * 3, "id": j} for j in range(8)]
        text = "\n".join(json.dumps(d) for d in docs) + "\n"  # DCLM-baseline's shards: JSON lines, zstd
        (shards / f"shard_{i:02d}.jsonl.zstd").write_bytes(zstandard.ZstdCompressor().compress(text.encode()))
    # the GPU script's CPU stand-in sizes, on the full tier's code paths
    stand_in = gpu_script().TINY
    tiny = {k: getattr(stand_in, k) for k in (
        "n_layers", "sizes", "seq_len", "batch_size", "data_sizes", "standard_epochs", "standard_start_epochs",
        "epochs_grid", "wd_grid", "search_start_epochs", "search_start_wd", "max_search_runs", "members",
        "distill_tokens", "distill_epochs", "workers")}
    tiny.update({f"data.{k}": getattr(stand_in.data, k) for k in ("train_bytes", "val_bytes")})
    cfg, _ = compose(InfComputeSuite, "full", [
        "device=cpu", f"data.source={shards}", "data.tokenizer=bytes", "paper_shapes=false", "gpus_per_size=[]",
        "micro_batch=4", "loss_chunk=0", "sample_shard_tokens=1200",
        "executor_options.cluster=debug", *(f"{k}={json.dumps(v)}" for k, v in tiny.items())])
    assert cfg.precision == "bf16" and cfg.executor == "submitit" and cfg.data.pattern == "*.jsonl.zstd"
    suite = InfComputeSuite()
    result = suite.run(cfg, 0, tmp_path)
    m = result.metrics
    assert all(f.endswith(".jsonl.zstd") for f in result.info["train_files"] + result.info["val_files"])
    assert m["ensemble_gain_min"] >= 0 and m["fits_in_range"] == 1.0
    assert {"distill_retention", "data_efficiency_joint", "self_distill_no_real_margin"} <= set(m)
    assert result.info["distillation"]["synthetic_tokens"] == 2000
    indexes = sorted((tmp_path / "cache").rglob("synth-*/index.json"))
    assert len(indexes) == 2  # the ensemble's samples, and its first member's
    assert all(len(json.loads(i.read_text())["shards"]) == 2 for i in indexes)  # 1200 + 800 tokens, a job each
    figures = suite.figures([result], cfg, tmp_path)
    assert len(figures) == 4 and all(p.stat().st_size > 0 for p in figures)


@pytest.mark.slow
def test_gpu_script_cpu_stand_in_writes_its_record(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_infcompute.py"), "--device", "cpu", "--tiny",
                           "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads((tmp_path / "out" / "infcompute_gpu.json").read_text())
    assert record["config"]["precision"] == "bf16" and record["config"]["sizes"] == [16, 24, 32]
    assert record["metrics"]["ensemble_gain_min"] >= 0 and record["wall_s"] > 0
    assert len(list((tmp_path / "out").glob("fig-*.png"))) == 4
    assert json.loads(proc.stdout.strip().splitlines()[-1])["standard_best"] > 0


@pytest.mark.slow
def test_full_tier_rehearsal_on_a_cpu_stand_in(harness_env, monkeypatch):
    monkeypatch.setenv("PAPERCLUB_CACHE", str(harness_env / "cache"))
    stand_in = gpu_script().TINY
    tiny = {k: getattr(stand_in, k) for k in ("n_layers", "sizes", "seq_len", "batch_size", "standard_epochs",
                                              "standard_start_epochs", "epochs_grid", "wd_grid", "search_start_epochs",
                                              "search_start_wd", "max_search_runs", "members", "distill_epochs")}
    real = ["device=cpu", "gpus_per_size=[]", "data.source=stdlib", "data.pattern=*.py", "data.tokenizer=bytes", "paper_shapes=false", "data.train_bytes=400000",
            "data.val_bytes=4000", "data_sizes=[100000,200000,400000]", "distill_tokens=400000", "replicates=1",
            *(f"{k}={json.dumps(v)}" for k, v in tiny.items())]
    assert main(["run", "infcompute", "--tier", "full", "--rehearse", "--out", "r", *real]) == 0
    record = json.loads((harness_env / "r" / "rehearsal.json").read_text())
    train = max(400, 4 * tiny["batch_size"] * (tiny["seq_len"] + 1))  # a thousandth, or four batches
    assert record["config"]["data"]["train_bytes"] == train and record["config"]["executor"] == "process"
    rows = {r["phase"]: r for r in record["phases"]}
    assert list(rows) == ["standard_and_regularized", "ensemble_training", "ensemble_eval", "distillation"]
    assert rows["ensemble_training"]["steps_real"] / rows["ensemble_training"]["steps_rehearsed"] == 400000 / train
    assert record["gpus"] == 0 and record["projected_seconds_per_seed"] > record["seconds"]


def test_gpu_script_times_a_training_step_of_each_shape_at_the_full_tiers_settings(tmp_path):
    script = gpu_script()
    cfg, _ = compose(InfComputeSuite, "full", ["data.source=/data/dclm", "data.tokenizer=bytes"])
    assert {k: getattr(cfg, k) for k in script.PAPER_STEP} == script.PAPER_STEP
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_infcompute.py"), "--device", "cpu", "--tiny",
                           "--paper-steps", "--steps", "1", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads((tmp_path / "infcompute_paper_steps.json").read_text())
    rows = record["shapes"]
    assert [(r["d_model"], r["vocab"]) for r in rows] == [(16, 300), (32, 300), (16, 50), (32, 50)]
    assert all(r["tokens_per_s"] > 0 and r["estimate_gb"] > 0 and r["gpu_hours_per_paper_epoch"] > 0 for r in rows)
    assert rows[1]["n_params_total"] > rows[0]["n_params_total"] > rows[2]["n_params_total"]
