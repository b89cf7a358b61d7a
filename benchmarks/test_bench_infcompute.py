"""infcompute training throughput: the library's train() against a plain reference loop of the
same model and batch (the harness must not be slower). `nox -s bench`; 1 thread."""

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from paper_infcompute import corpus  # noqa: E402
from paper_infcompute import train as tr  # noqa: E402
from paper_infcompute.model import Decoder, ModelConfig  # noqa: E402

MODEL = ModelConfig(d_model=64, n_layers=2, n_heads=4, seq_len=64)
SPEC = corpus.CorpusSpec(train_bytes=25_000, val_bytes=32_000)


@pytest.fixture(scope="module")
def data():
    torch.set_num_threads(1)
    return corpus.load(SPEC)


def test_library_train_one_epoch(benchmark, data):
    cfg = tr.RunConfig(model=MODEL, corpus=SPEC, epochs=1)
    _, metrics = benchmark.pedantic(tr.train, args=(cfg, data), kwargs={"evaluate": False}, rounds=5,
                                    iterations=1, warmup_rounds=1)
    benchmark.extra_info["tokens_per_s"] = metrics["tokens_per_s"]


def test_reference_loop_one_epoch(benchmark, data):
    """AdamW on the same batches, no schedule, no clipping, no evaluation: the floor."""
    windows = tr.windows(data.train, MODEL.seq_len)

    def loop():
        torch.manual_seed(0)
        model = Decoder(MODEL)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95))
        for i in range(0, len(windows), 32):
            batch = windows[i:i + 32]
            logits = model(batch[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    benchmark.pedantic(loop, rounds=5, iterations=1, warmup_rounds=1)
