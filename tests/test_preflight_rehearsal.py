"""Preflight (what a run needs, checked in seconds) and rehearsal (every phase for a few steps, projected)."""

from __future__ import annotations

import json
import types

import pytest

from runners import phases
from runners.cli import main
from runners.errors import HarnessError
from runners.runner import unmet_requirements

SUITES = ("dmpc", "infcompute", "lewm", "pacbayes", "ssd")


def _fake_cuda(monkeypatch, count: int, gb: float) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda i: types.SimpleNamespace(total_memory=gb * 1e9, name="stand-in GPU"))


def test_gpu_requirements_count_devices_and_their_memory(monkeypatch):
    pytest.importorskip("torch")
    _fake_cuda(monkeypatch, 1, 80)
    assert unmet_requirements(frozenset({"gpus>=1", "gpu_mem>=80GB"}), "cuda") == []
    assert unmet_requirements(frozenset({"gpus>=5"}), "cuda") == ["gpus>=5: 1 cuda device(s) visible"]
    assert unmet_requirements(frozenset({"cuda", "gpu_mem>=141GB"}), "cuda") == ["gpu_mem>=141GB: cuda:0 has 80 GB"]
    assert unmet_requirements(frozenset({"gpus>=5"}), "cpu") == []  # a CPU stand-in of a GPU tier
    with pytest.raises(HarnessError, match="unknown requirement"):
        unmet_requirements(frozenset({"gpus=5"}), "cuda")


def test_preflight_verdicts_ok_short_and_skipped(harness_env, capsys, monkeypatch):
    assert main(["run", "toy", "--tier", "full", "--preflight"]) == 0
    assert "preflight toy/full: ok: 1 need(s) met" in capsys.readouterr().out
    # a stand-in config that asks for more memory than exists: one line naming the need and what was found
    assert main(["run", "toy", "--tier", "full", "--preflight", "extra_gb=1e7"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "memory of phase draw on cpu: needs about 10000000.00 GB (estimate), found" in err[0]
    assert "available RAM" in err[0]
    # a full-tier run checks first and starts nothing when short
    assert main(["run", "toy", "--tier", "full", "--out", "f", "--no-publish", "extra_gb=1e7"]) == 2
    assert not (harness_env / "f").exists()


@pytest.mark.parametrize("suite", SUITES)
def test_every_full_tier_has_a_one_line_preflight_here(suite, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the verdict depends on it")
    extra = ["data.source=stdlib", "data.tokenizer=bytes"] if suite == "infcompute" else []
    assert main(["run", suite, "--tier", "full", "--preflight", *extra]) == 3
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith(f"preflight {suite}/full: skipped: requirement unmet: gpus>=")


def test_full_tier_stand_ins_that_do_not_fit_are_refused_by_name(capsys, tmp_path):
    pytest.importorskip("torch")
    from transformers import Dinov2Config

    # DINO-WM's encoder (DINOv2 ViT-S/14's config: its shape is all the preflight reads) and the patch-token
    # baseline planning 50 episodes x 300 candidates x 768 tokens of width 384 in one batch (unchunked)
    Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, patch_size=14).save_pretrained(tmp_path)
    assert main(["run", "lewm", "--tier", "full", "--preflight", "device=cpu", "cem.chunk=0",
                 f"patch_encoder={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "memory of phase patch_planning on cpu: needs about" in err and "patch encoder" not in err
    # training the predictor on 128 x 3 frames x 256 tokens: 6 layers x 98,304 tokens x (4 x 1024 + 2 x 2048 +
    # 8 x 384) values x 4 bytes x 1.27 (measured over counted) = 33.7 GB, and the weights
    assert "memory of phase patch_training on cpu: needs about 34.41 GB (estimate)" in err
    # a 1.4B model's step over 64 x 4096 tokens at once, logits included, and a corpus that is not there
    assert main(["run", "infcompute", "--tier", "full", "--preflight", "device=cpu", "data.source=/no/such/shards",
                 "data.tokenizer=bytes", "micro_batch=0", "loss_chunk=0"]) == 2
    err = capsys.readouterr().err
    assert "the corpus (data.source): needs /no/such/shards to exist, found nothing there" in err
    assert "memory of phase training on cpu" in err


def test_lewm_preflight_names_a_patch_encoder_it_cannot_reach(monkeypatch, capsys, tmp_path):
    """A hub encoder neither cached nor reachable is one line (one request, no retries), and its planning
    memory is not guessed; a directory without a config is another."""
    pytest.importorskip("torch")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # refused at once
    assert main(["run", "lewm", "--tier", "full", "--preflight", "device=cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and (
        "weights of facebook/dinov2-small: needs a local copy or its download, found no local "
        "copy, and http://127.0.0.1:9/facebook/dinov2-small/resolve/main/config.json unreachable") in err[0]
    assert "patch_planning" not in err[0]
    (tmp_path / "empty").mkdir()
    empty = f"patch_encoder={tmp_path / 'empty'}"
    assert main(["run", "lewm", "--tier", "full", "--preflight", "device=cpu", empty]) == 2
    assert "weights of the patch encoder" in capsys.readouterr().err


def test_hub_weights_are_checked_on_the_hub_with_the_token(monkeypatch):
    """A hub model not cached here: one HEAD request for its file, with the token as a bearer token, so a gated
    repository counts only when the token has access to it; a refusal and an unreachable hub are one line each."""
    import http.server
    import threading

    from huggingface_hub import constants

    from runners import preflight as pf

    seen = []

    class Hub(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):  # noqa: N802 (the handler's name)
            seen.append((self.path, self.headers.get("Authorization")))
            allowed = "public" in self.path or self.headers.get("Authorization") == "Bearer good"
            self.send_response(200 if allowed else 403)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        monkeypatch.setenv("HF_TOKEN", "good")
        assert pf.hub_access("org/public-model", cached=False, gated=False).ok
        assert pf.hub_access("org/gated-model", cached=False, gated=True, filename="tokenizer.json").ok
        assert seen == [("/org/public-model/resolve/main/config.json", "Bearer good"),
                        ("/org/gated-model/resolve/main/tokenizer.json", "Bearer good")]
        monkeypatch.setenv("HF_TOKEN", "no-access")
        refused = pf.hub_access("org/gated-model", cached=False, gated=True)
        assert not refused.ok and refused.line().startswith("weights of org/gated-model (gated): needs a local copy")
        assert refused.line().endswith("refused it (HTTP 403)")
        assert pf.hub_access("org/gated-model", cached=True, gated=True).ok and len(seen) == 3  # cached: no request
    finally:
        server.shutdown()
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    assert "unreachable" in pf.hub_access("org/public-model", cached=False, gated=False).found


def test_infcompute_preflight_lists_a_hub_corpus_once(monkeypatch, capsys):
    """The full tier's default corpus is DCLM-baseline on the hub: the preflight lists its shards at the commit
    the branch names (seconds), and a hub it cannot reach is one line, not a traceback."""
    pytest.importorskip("torch")
    import huggingface_hub

    from paper_infcompute.corpus import CorpusSpec
    from suites.infcompute import _hub_corpus

    class Api:
        def dataset_info(self, repo, revision=None):
            return type("Info", (), {"sha": "0123456789abcdef" * 2 + "01234567"})()

        def list_repo_files(self, repo, repo_type, revision):
            return ["a/shard_0.jsonl.zstd", "b/shard_1.jsonl.zstd", "README.md"]

    monkeypatch.setattr(huggingface_hub, "HfApi", Api)
    spec = CorpusSpec(source="hf://datasets/mlfoundations/dclm-baseline-1.0", pattern="*.jsonl.zstd")
    need = _hub_corpus(spec)
    assert need.ok and need.found == "2 at commit 0123456789ab"

    class Offline(Api):
        def dataset_info(self, repo, revision=None):
            raise OSError("cannot reach huggingface.co")

    monkeypatch.setattr(huggingface_hub, "HfApi", Offline)
    assert main(["run", "infcompute", "--tier", "full", "--preflight", "device=cpu", "data.tokenizer=bytes"]) == 2
    assert ("the corpus (hf://datasets/mlfoundations/dclm-baseline-1.0): needs files matching *.jsonl.zstd on the "
            "hub, found OSError: cannot reach huggingface.co") in capsys.readouterr().err


def test_ssd_preflight_names_the_gated_weights_and_each_gpu_share(monkeypatch):
    pytest.importorskip("torch")
    from runners.config import compose
    from runners.preflight import check
    from suites.ssd import SSDSuite

    _fake_cuda(monkeypatch, 5, 80)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-home")
    cfg, _ = compose(SSDSuite, "full", [])
    verdict = check(SSDSuite, cfg, "full")
    lines = [n.line() for n in verdict.needs]
    assert any("meta-llama/Llama-3.1-70B-Instruct (gated): needs a Hugging Face token" in x for x in lines)
    assert "the official engine's interpreter (official_python): needs its virtualenv's python, found nothing set" in lines
    shares = [n for n in verdict.needs if n.what.startswith("memory of phase decode (target share)")]
    assert [n.what.split(" on ")[1] for n in shares] == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]
    assert all(n.ok for n in shares)  # 70.6B x 2 bytes x 1.1 / 4 = 38.8 GB (+ 3.7 GB for one held-out chunk on cuda:0)
    # a static KV cache of 4,096 slots for each of the 16 rows of the largest batch: 80 layers x 8 KV heads x 128 x
    # 2 (K, V) x 2 bytes = 327,680 bytes a slot, over the target's 4 GPUs; on the draft's GPU, 32,768 bytes a
    # slot for the batch's 16 rows, its tree's 16 x 21 branches (fan-out 3 at 7 positions; no other fan-out
    # on a miss) and the jit backup's subsets of 1 .. 15 missed rows (120 rows)
    static = check(SSDSuite, compose(SSDSuite, "full", ["static_cache=4096"])[0], "full").needs

    def estimate(needs, what: str) -> float:
        return float(next(n.needed for n in needs if n.what == what).split()[1])

    target, draft = "memory of phase decode (target share) on cuda:1", "memory of phase decode (draft) on cuda:4"
    assert estimate(static, target) - estimate(verdict.needs, target) == pytest.approx(16 * 4096 * 327_680 / 4 / 1e9,
                                                                                       abs=0.01)
    assert estimate(static, draft) - estimate(verdict.needs, draft) == pytest.approx((16 + 16 * 21 + 120) * 4096 * 32_768 / 1e9,
                                                                                     abs=0.01)
    _fake_cuda(monkeypatch, 4, 80)
    assert check(SSDSuite, cfg, "full").unmet == ["gpus>=5: 4 cuda device(s) visible"]


def test_a_phase_with_parts_shares_its_wall_time_and_peak(tmp_path):
    with phases.recording(tmp_path):
        phases.record("graph", 10.0, {"model_training": 30.0, "agent_evaluation": 10.0})
    rows = json.loads((tmp_path / "phases.json").read_text())["phases"]
    assert [(r["phase"], r["seconds"]) for r in rows] == [("model_training", 7.5), ("agent_evaluation", 2.5)]
    assert rows[0]["fixed_seconds"] is None  # no tracked loop in it
    assert rows[0]["peak_memory_gb"] == rows[1]["peak_memory_gb"] and rows[0]["peak_memory_gb"]["cpu"] > 0


class _Clock:
    """A perf_counter the test advances by hand."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_phase_counts_what_does_not_grow_with_its_steps_as_fixed(monkeypatch):
    """Time outside tracked loops (building, loading) and the warm-up of a loop of equal steps (its first step's
    excess over the others' median) are fixed; the rehearsal scales only the rest by the real run's steps."""
    import time

    from runners.progress import Laps, track
    from runners.rehearsal import project

    clock = _Clock()
    monkeypatch.setattr(time, "perf_counter", clock)
    phases.begin(None)
    laps = Laps()
    clock.now += 3.0  # building the model
    for i in track(range(4), "training", work="steps"):
        clock.now += 2.0 if i == 0 else 1.0  # the first step: 1 s of warm-up
        for _ in track(range(2), "an inner loop", work="steps"):  # nested: counted once, in the outer loop
            pass
    laps.done("train")
    for name in track(["slow", "fast", "fast", "fast"], "planners", work="items"):  # no warm-up taken out
        clock.now += 4.0 if name == "slow" else 1.0
    laps.done("plan")
    for _ in track(range(3), "a loop that is not the phase's work"):
        clock.now += 1.0
    clock.now += 2.0
    laps.done("evaluate")  # no work loop: nothing measured as fixed
    train, plan, evaluate = phases.rows()
    assert (train["seconds"], train["fixed_seconds"]) == (8.0, 4.0)  # 3 outside + 1 of warm-up
    assert (plan["seconds"], plan["fixed_seconds"]) == (7.0, 0.0)
    assert (evaluate["seconds"], evaluate["fixed_seconds"]) == (5.0, None)
    with pytest.raises(ValueError, match="work must be None, 'items' or 'steps', got 'epochs'"):
        list(track(range(2), "x", work="epochs"))
    rows = project([train, plan, evaluate], {"train": 4, "plan": 2, "evaluate": 10}, {"train": 400, "plan": 4,
                                                                                        "evaluate": 20})
    assert [r["projected_seconds"] for r in rows] == [4.0 + 4.0 * 100, 7.0 * 2, 5.0 * 2]
    assert [r["seconds_per_step"] for r in rows] == [1.0, 3.5, 0.5]


def test_loop_time_is_the_union_of_the_loops_within_the_phase():
    from runners.progress import warmup

    # (start, end, warm-up): one before the phase (from 10), two overlapping, one inside another
    loops = [(5.0, 9.0, 1.0), (12.0, 16.0, 0.5), (14.0, 18.0, 0.25), (15.0, 17.0, 9.0)]
    assert phases._loop_seconds(loops, since=10.0) == (6.0, 0.75)
    assert phases._loop_seconds([(8.0, 12.0, 0.0)], since=10.0) == (2.0, 0.0)
    assert warmup([0.0, 5.0, 6.0, 7.0, 8.0], 9.0) == 4.0  # durations 5, 1, 1, 1, 1
    assert warmup([0.0, 1.0, 4.0, 5.0], 6.0) == 0.0  # the first no slower than the others' median (2)
    assert warmup([0.0, 5.0], 6.0) == 0.0  # too few steps to tell


def test_rehearsal_projects_each_phase_by_its_steps(harness_env, capsys):
    assert main(["run", "toy", "--tier", "full", "--rehearse", "--out", "r"]) == 0
    record = json.loads((harness_env / "r" / "rehearsal.json").read_text())
    assert record["complete"] and record["overrides"] == ["n=1000"] and record["config"]["n"] == 1000
    draw, wait, summarise = record["phases"]
    assert (draw["phase"], draw["steps_rehearsed"], draw["steps_real"]) == ("draw", 1000, 100000)
    assert draw["projected_seconds"] == pytest.approx(100 * draw["seconds"])
    assert summarise["steps_rehearsed"] is None and summarise["projected_seconds"] == summarise["seconds"]
    per_seed = sum(r["projected_seconds"] for r in (draw, wait, summarise)) + max(record["seconds_outside_phases"], 0)
    assert record["projected_seconds_per_seed"] == pytest.approx(per_seed, abs=1e-5)
    assert record["projected_hours"] == pytest.approx(3 * per_seed / 3600, abs=1e-8) and record["gpus"] == 0
    assert json.loads((harness_env / "r" / "seed_0" / "phases.json").read_text())["phases"][0]["phase"] == "draw"
    assert "toy / full rehearsal on" in capsys.readouterr().out
    assert not (harness_env / "r" / "summary.json").exists()  # no claim is evaluated


def test_lewm_full_tier_rehearsal_on_a_cpu_stand_in(harness_env, monkeypatch):
    pytest.importorskip("torch")
    from conftest import dinov2_standin

    monkeypatch.setenv("PAPERCLUB_CACHE", str(harness_env / "cache"))
    scaled = [f"patch_encoder={dinov2_standin(harness_env / 'dino')}", "device=cpu", "model.image_size=32",
              "model.encoder=cnn", "model.channels=[16,32,64]", "model.dim=32", "model.projector_hidden=64",
              "model.layers=1", "model.heads=2", "model.head_dim=16", "model.mlp=64",
              "cem.samples=16", "cem.iterations=2", "cem.elites=4", "episodes=40", "heldout_episodes=20", "batch=8",
              "diag_windows=32", "threads=1"]
    assert main(["run", "lewm", "--tier", "full", "--rehearse", "--out", "r", *scaled]) == 0
    record = json.loads((harness_env / "r" / "rehearsal.json").read_text())
    rows = {r["phase"]: r for r in record["phases"]}
    assert list(rows) == ["data", "training", "collapse", "planning", "patch_training", "patch_planning", "plan_latency",
                          "surprise"]
    assert (rows["training"]["steps_rehearsed"], rows["training"]["steps_real"]) == (60, 210_000)
    assert (rows["patch_planning"]["steps_rehearsed"], rows["patch_planning"]["steps_real"]) == (2, 50)
    patch = rows["patch_training"]  # loading DINOv2 and building the model do not grow with the steps
    assert 0 < patch["fixed_seconds"] < patch["seconds"] and patch["projected_seconds"] == pytest.approx(
        patch["fixed_seconds"] + (patch["seconds"] - patch["fixed_seconds"]) * 20_000 / 20)
    assert rows["surprise"]["fixed_seconds"] is None  # no loop marked as its work: projected whole
    assert record["seeds"] == 3 and record["projected_hours"] > 0
    assert record["real_run_short"] == []  # at the scaled shapes the real run fits here too


def test_cluster_presets_give_each_job_the_gpus_its_tier_requires():
    from runners.config import sweep_argv
    from suites.pacbayes import PacBayesSuite
    from suites.ssd import SSDSuite

    argv = sweep_argv(SSDSuite, "full", ["k=2,4", "hydra/launcher=cluster_slurm"])
    assert argv[-1] == "hydra.launcher.gpus_per_node=5"
    assert sweep_argv(SSDSuite, "full", ["k=2,4", "hydra/launcher=cluster_ray"])[-1] == \
        "hydra.launcher.ray.remote.num_gpus=5"
    mine = sweep_argv(SSDSuite, "full", ["k=2,4", "hydra/launcher=cluster_slurm", "hydra.launcher.gpus_per_node=8"])
    assert [a for a in mine if "gpus_per_node" in a] == ["hydra.launcher.gpus_per_node=8"]  # the user's wins
    one = sweep_argv(PacBayesSuite, "full", ["bound.hidden=8,16", "hydra/launcher=cluster_slurm"])
    assert not any("gpus_per_node" in a for a in one)  # one GPU: the preset's own
    assert not any("gpus_per_node" in a for a in sweep_argv(SSDSuite, "full", ["k=2,4"]))  # no cluster preset
