"""The ssd full tier: the paper's configuration, skipped without CUDA; its code paths (hub pairs,
layer-split device maps, the paper's prompt loaders, the vLLM baseline's arguments) on CPU."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from paper_ssd import models  # noqa: E402
from paper_ssd.prompts import PAPER_SETS, paper_prompts, paper_token_ids  # noqa: E402
from paper_ssd.vllm_baseline import VLLMRun, sampling_args  # noqa: E402
from runners.cli import main  # noqa: E402
from runners.config import compose  # noqa: E402
from suites.ssd import SSDSuite  # noqa: E402


def test_full_tier_is_the_papers_setup_and_is_skipped_without_cuda(harness_env):
    cfg, _ = compose(SSDSuite, "full", [])
    assert cfg.pair == "llama3.1-70b" and cfg.prompt_set == "paper" and cfg.prompts_per_set == 128
    assert cfg.new_tokens == 512 and cfg.k == 6 and cfg.fan_out == [3] * 7 and cfg.temperature == 0
    assert models.parse_devices(cfg.target_device) == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]
    assert models.parse_devices(cfg.draft_device) == ["cuda:4"] and cfg.vllm and cfg.tensor_parallel == 4
    assert cfg.target_tp == 4  # our engine's target: tensor parallel over cuda:0-3 (paper_ssd.tp)
    target, draft = models.PAIRS[cfg.pair]
    assert (target.hub_id, draft.hub_id) == ("meta-llama/Llama-3.1-70B-Instruct", "meta-llama/Llama-3.2-1B-Instruct")
    if torch.cuda.is_available():
        return
    assert main(["run", "ssd", "--tier", "full", "--out", "f", "--no-publish"]) == 3
    summary = json.loads((harness_env / "f" / "summary.json").read_text())
    assert summary["status"] == "skipped" and "cuda" in summary["reason"]


def test_hub_pairs_locate_by_id_unless_given_or_cached(tmp_path):
    target, _ = models.PAIRS["qwen3-32b"]
    assert models.locate(target, tmp_path) == "Qwen/Qwen3-32B"
    assert models.locate(target, tmp_path, "/models/qwen3-32b") == "/models/qwen3-32b"
    (tmp_path / "hf" / target.name).mkdir(parents=True)
    (tmp_path / "hf" / target.name / "config.json").write_text("{}")
    assert models.locate(target, tmp_path) == str(tmp_path / "hf" / target.name)


def test_layer_split_device_map():
    layout = models.layer_map(10, ["cuda:0", "cuda:1", "cuda:2", "cuda:3"])
    per_device = [sum(v == f"cuda:{i}" for k, v in layout.items() if k.startswith("model.layers.")) for i in range(4)]
    assert per_device == [3, 3, 3, 1] and layout["model.embed_tokens"] == "cuda:0" and layout["lm_head"] == "cuda:3"
    for bad in ("gpu", "cuda:3-1", "cuda:a"):
        with pytest.raises(ValueError, match="expected cpu, cuda"):
            models.parse_devices(bad)


def test_paper_prompt_sets_through_their_loaders():
    rows = {"openai/openai_humaneval": [{"prompt": "def add(a, b):\n"}],
            "tatsu-lab/alpaca": [{"instruction": "Sort these.", "input": "3 1 2"}, {"instruction": "Say hi.", "input": " "}],
            "openai/gsm8k": [{"question": "2 + 2?"}],
            "openbmb/UltraFeedback": [{"instruction": "Explain tides."}]}
    calls = []

    def load_dataset(hub_id, config, split):
        calls.append((hub_id, config, split))
        return rows[hub_id]

    out = paper_prompts(2, load_dataset=load_dataset)
    assert [p["text"] for p in out] == ["def add(a, b):\n", "Sort these.\n\n3 1 2", "Say hi.", "2 + 2?", "Explain tides."]
    assert [p["kind"] for p in out] == ["humaneval", "alpaca", "alpaca", "gsm8k", "ultrafeedback"]
    # the authors' preparation: GSM8K's and UltraFeedback's train splits, the latter's instructions
    assert ("openai/gsm8k", "main", "train") in calls and ("openbmb/UltraFeedback", None, "train") in calls
    assert len(calls) == len(PAPER_SETS)

    def llama_like(text, add_special_tokens=True):  # a BOS (id 0) unless told not to, as Llama's tokenizer
        return {"input_ids": [0] * add_special_tokens + [len(text)]}

    assert paper_token_ids(llama_like, [{"text": "hi"}]) == [[2]]  # the authors' benchmark adds no BOS
    with pytest.raises(ValueError, match="unknown prompt set"):
        paper_prompts(1, ("mmlu",), load_dataset=load_dataset)


def test_vllm_baseline_is_the_papers_sd_configuration():
    sd = VLLMRun("meta-llama/Llama-3.1-70B-Instruct", "meta-llama/Llama-3.2-1B-Instruct", tensor_parallel=4)
    args = sd.engine_args()
    assert args["tensor_parallel_size"] == 4 and args["speculative_config"] == {
        "model": "meta-llama/Llama-3.2-1B-Instruct", "num_speculative_tokens": 5, "method": "draft_model"}
    assert "speculative_config" not in VLLMRun("t").engine_args()
    assert sampling_args(512, 0.0) == {"temperature": 0.0, "max_tokens": 512, "min_tokens": 512, "ignore_eos": True}


@pytest.mark.slow
def test_gpu_script_runs_every_mode_on_a_cpu_stand_in(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, str(root / "scripts" / "gpu_ssd.py"), "--tiny", "--device", "cpu",
                           "--out", str(tmp_path), "--prompts", "4", "--new-tokens", "10", "--ks", "2",
                           "--fans", "2", "--temperatures", "0", "--batches", "1", "2"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "ssd_gpu.json").read_text())
    assert result["complete"] and len(result["runs"]) == 2 * 4  # batch x (AR, SD, SSD jit, SSD fast)
    assert {r["mode"] for r in result["runs"]} == {"ar", "sd", "ssd_jit", "ssd_fast"}
    assert all(r["new_tokens"] == 4 * 10 and r["tokens_per_s"] > 0 for r in result["runs"])
    assert result["greedy_exact_match"] == {"1": 1.0, "2": 1.0}  # float32: every stream is the target's own


def _gpu_ssd_script():
    """scripts/gpu_ssd.py as a module."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("gpu_ssd", Path(__file__).resolve().parent.parent / "scripts" / "gpu_ssd.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


@pytest.mark.slow
def test_gpu_script_compares_eager_static_and_compiled_sessions(tmp_path):
    """``--compile``: batch-1 AR, SD and SSD eager, over a static KV cache, and compiled (traced by the eager
    backend on a CPU stand-in): every variant's greedy streams are the eager ones."""
    script = _gpu_ssd_script()
    assert script.main(["--tiny", "--device", "cpu", "--out", str(tmp_path), "--prompts", "1", "--new-tokens", "8",
                        "--ks", "2", "--fans", "2", "--compile", "eager"]) == 0
    result = json.loads((tmp_path / "ssd_gpu.json").read_text())
    assert result["complete"] and list(result["graphs"]) == ["eager", "static", "compiled_eager"]
    for name, row in result["graphs"].items():
        assert row["ar_streams_identical_to_eager"] == row["sd_streams_identical_to_eager"] == 1.0
        assert row["ssd_streams_identical_to_eager"] == 1.0
        assert row["ar_tokens_per_s"] > 0 and (name == "eager") == (row["slots_per_row"] == 0)
    assert result["graphs"]["static"]["sd_speedup_over_eager"] == pytest.approx(
        result["graphs"]["static"]["sd_tokens_per_s"] / result["graphs"]["eager"]["sd_tokens_per_s"])


def test_a_layer_split_target_takes_the_kept_positions_on_its_heads_device():
    """transformers indexes the final hidden states (on the last GPU of a layer-split model) with
    ``logits_to_keep``: the index goes to the head's device, not the first layer's."""
    from types import SimpleNamespace

    from transformers import Qwen2Config

    class LayerSplit(torch.nn.Module):  # embeddings on the CPU, the head on another device ("meta" here)
        device = torch.device("cpu")

        def __init__(self):
            super().__init__()
            self.config = Qwen2Config(vocab_size=8, hidden_size=8, num_hidden_layers=1, num_attention_heads=2)
            self.head = torch.nn.Linear(8, 8, bias=False, device="meta")

        def get_output_embeddings(self):
            return self.head

        def forward(self, **kw):
            self.kept_on = kw["logits_to_keep"].device
            return SimpleNamespace(logits=torch.zeros(1, 1, 8))

    session = models.HFSession(LayerSplit())
    assert session.output_device == torch.device("meta") and session.device == torch.device("cpu")
    session.forward(torch.zeros(1, 3, dtype=torch.long), torch.arange(3)[None], torch.ones(1, 3, dtype=torch.bool),
                    keep=torch.tensor([2]))
    assert session.model.kept_on == torch.device("meta")


def test_the_held_out_text_covers_the_offline_statistics_or_the_run_stops_before_decoding(harness_env, monkeypatch):
    from suites import ssd

    full, _ = compose(SSDSuite, "full", [])
    assert ssd.text_spec(full).val_bytes >= ssd.HELD_OUT_BYTES_PER_TOKEN * 64 * 512  # 64 chunks of 512 tokens
    for tier in ("smoke", "small"):  # unchanged where 16 KB were enough
        assert ssd.text_spec(compose(SSDSuite, tier, [])[0]).val_bytes == 16_000
    monkeypatch.setattr(ssd, "_decode", lambda *a: pytest.fail("decoded before the held-out text was checked"))
    monkeypatch.setattr(ssd, "HELD_OUT_BYTES_PER_TOKEN", 1)  # as if the text tokenised at one byte per token...
    monkeypatch.setattr(ssd, "_tiny_prompts", lambda cfg, text, tiny: ssd.Pair(
        *tiny, prompts=[[1, 2]], held_out=text.val.tolist()[: len(text.val) // 2], facts={}))  # ...but gave half
    assert main(["run", "ssd", "--tier", "smoke", "--out", "h", "--no-publish", "offline_chunks=200"]) == 2
    summary = json.loads((harness_env / "h" / "summary.json").read_text())
    assert summary["status"] == "error" and summary["seeds_done"] == []
    need = 200 * compose(SSDSuite, "smoke", [])[0].offline_len
    assert f"held-out text has {need // 2} tokens; offline_chunks x offline_len = {need} needs more" in summary["reason"]


def test_gpu_script_trains_its_own_pair_on_a_cpu_stand_in(tmp_path):
    """The device machine has no model hub: the script trains a byte-level pair first, then decodes with it."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, str(root / "scripts" / "gpu_ssd.py"), "--train-pair", "--tiny", "--device",
                           "cpu", "--out", str(tmp_path), "--prompts", "2", "--new-tokens", "8", "--ks", "2",
                           "--fans", "2", "--temperatures", "0", "--batches", "1", "2"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "ssd_gpu.json").read_text())
    training = result["training"]
    assert training["target"]["n_params"] > training["draft"]["n_params"] and training["target"]["val_loss"] > 0
    assert result["complete"] and {r["mode"] for r in result["runs"]} == {"ar", "sd", "ssd_jit", "ssd_fast"}
    sd = next(r for r in result["runs"] if r["mode"] == "sd")
    assert sd["acceptance"] > 0  # a trained pair agrees on some tokens (a random pair: about none)
    assert result["greedy_exact_match"] == {"1": 1.0, "2": 1.0}


def test_gpu_script_refuses_more_tokens_than_the_trained_pairs_positions_before_training(tmp_path):
    """--train-pair's models have learned positions (512 on a GPU, 128 in the CPU stand-in): a decode longer
    than that is one line before any training, not a crash in the first decode after it."""
    with pytest.raises(SystemExit, match=r"^--new-tokens 96 after 64-byte prompts, K up to 5, needs 172 positions; "
                                         r"the trained pair has 128$"):
        _gpu_ssd_script().main(["--train-pair", "--tiny", "--device", "cpu", "--out", str(tmp_path), "--new-tokens",
                                "96", "--ks", "3", "5"])
    assert not list(tmp_path.iterdir())  # nothing trained or written
