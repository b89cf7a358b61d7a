"""Every cache entry is checked before use: a torn file, a flipped byte inside tensor data, or a
pickle with a payload where a checkpoint should be is said in one line and rebuilt, never used.

torch's zip reader does not check the CRC-32 stored beside each record, so a flipped byte in tensor
data loads silently unless the loader checks; numpy's npz reader checks on a whole read."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")


class _Payload:
    """What an attacker with write access to a shared cache would plant: unpickling it runs code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def flip_inside(path, needle: bytes):
    """Flip one bit of the stored bytes ``needle`` (tensor or array data), leaving the archive readable."""
    raw = bytearray(path.read_bytes())
    at = raw.find(needle)
    assert at > 0, "the data to alter are not stored uncompressed"
    raw[at + len(needle) // 2] ^= 0x01
    path.write_bytes(bytes(raw))


def damage(kind: str, path, needle: bytes, marker=None):
    if kind == "flipped":
        flip_inside(path, needle)
    elif kind == "torn":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        torch.save({"state": _Payload(marker), "history": {}, "config": {}}, path)


@pytest.mark.parametrize("kind", ["flipped", "torn", "planted"])
def test_lewm_checkpoint_is_checked_and_retrained(kind, tmp_path, monkeypatch, capsys):
    from paper_lewm import train as tr
    from paper_lewm.model import LeWM, ModelConfig

    cfg = tr.TrainConfig(model=ModelConfig(image_size=16, channels=(8, 16), dim=16, projector_hidden=32, layers=1,
                                           heads=2, head_dim=8, mlp=32), steps=1)
    trained = []

    def fake_train(c, data, wrap=iter, checkpoint=None):  # the cache logic, not training, is under test
        torch.manual_seed(len(trained))
        trained.append(c)
        return LeWM(c.model).eval(), {"loss": [float(len(trained))]}

    monkeypatch.setattr(tr, "train", fake_train)
    model, _ = tr.cached_train(cfg, None, "data", tmp_path)
    [entry] = tmp_path.glob("lewm-*.pt")
    weight = next(iter(model.state_dict().values())).numpy().tobytes()
    marker = tmp_path / "code-ran"
    damage(kind, entry, weight, marker)
    _, history = tr.cached_train(cfg, None, "data", tmp_path)
    assert len(trained) == 2 and history == {"loss": [2.0]} and not marker.exists()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cache entry {entry} does not load" in err and "training it again" in err
    assert tr.cached_train(cfg, None, "data", tmp_path)[1] == {"loss": [2.0]} and len(trained) == 2  # whole again


@pytest.mark.parametrize("kind", ["flipped", "torn", "planted"])
def test_ssd_tiny_decoder_is_checked_before_it_loads(kind, tmp_path):
    import pickle
    import zipfile

    from paper_infcompute.model import Decoder, ModelConfig
    from paper_ssd.lm import save_tiny

    torch.manual_seed(0)
    model = Decoder(ModelConfig(d_model=16, n_layers=1, n_heads=2, seq_len=32, vocab_size=64))
    spec = save_tiny(model, tmp_path / "tiny.pt")
    spec.session()  # whole: loads
    marker = tmp_path / "code-ran"
    damage(kind, tmp_path / "tiny.pt", model.state_dict()["embed.weight"].numpy().tobytes(), marker)
    refused = pickle.UnpicklingError if kind == "planted" else zipfile.BadZipFile
    with pytest.raises(refused, match="does not match its checksum" if kind == "flipped" else None):
        spec.session()
    assert not marker.exists()


def test_infcompute_teacher_samples_are_checked_and_sampled_again(tmp_path, capsys):
    from paper_infcompute import sample
    from paper_infcompute import train as tr

    shards = [np.arange(5000, dtype=np.int64), np.arange(70_000, 71_000, dtype=np.int64)]
    assert sample.load_samples(tmp_path, "k") is None  # none yet: nothing said
    records = [sample.save_shard(tmp_path, "k", i, t, vocab=128_256) for i, t in enumerate(shards)]
    assert sample.load_samples(tmp_path, "k") is None  # shards without their index are not samples yet
    sample.finish(tmp_path, "k", records)
    loaded = sample.load_samples(tmp_path, "k")
    assert [x.dtype for x in loaded] == [np.uint32, np.uint32]
    for got, want in zip(loaded, shards, strict=True):
        np.testing.assert_array_equal(got, want)
    flip_inside(sample.shard_dir(tmp_path, "k") / "shard-00000.npy", shards[0].astype(np.uint32).tobytes()[8000:8016])
    assert sample.load_samples(tmp_path, "k") is None
    assert "do not match their checksum; sampling them again" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="missing or damaged"):
        tr.load_model(tr.RunConfig(synth_key="k"), None, tmp_path)  # never trained without its samples


def test_dmpc_data_that_do_not_match_their_checksum_are_generated_again(tmp_path, monkeypatch):
    from paper_dmpc import data

    calls = []

    def fake_generate(spec, log=print):
        calls.append(spec)
        rng = np.random.default_rng(len(calls))
        sets = {name: {"actions": rng.normal(size=(300, 3)).astype(np.float32)} for name in ("medium", "medium-replay")}
        return sets, {"label": data.LABEL}

    monkeypatch.setattr(data, "generate", fake_generate)
    spec = data.DataSpec(env="hopper")
    first, _ = data.load_or_generate(spec, tmp_path, log=lambda *_: None, isolated=False)
    again, _ = data.load_or_generate(spec, tmp_path, log=lambda *_: None, isolated=False)
    assert len(calls) == 1 and np.array_equal(again["medium"]["actions"], first["medium"]["actions"])
    entry = tmp_path / f"hopper-{spec.key()}" / "medium.npz"
    raw = bytearray(entry.read_bytes())
    raw[-100] ^= 0x01  # anywhere in the file, the central directory included
    entry.write_bytes(bytes(raw))
    said = []
    regenerated, _ = data.load_or_generate(spec, tmp_path, log=said.append, isolated=False)
    assert len(calls) == 2 and not np.array_equal(regenerated["medium"]["actions"], first["medium"]["actions"])
    assert said[0].startswith("cached data in ") and "medium.npz does not match the checksum" in said[0]


def test_lewm_episodes_that_do_not_read_whole_are_generated_again(tmp_path, capsys):
    from paper_lewm.config import ModelConfig
    from suites.lewm import LeWMConfig, LeWMSuite

    cfg = LeWMConfig(episodes=2, heldout_episodes=1, episode_steps=12, model=ModelConfig(image_size=16))
    env = LeWMSuite._env(cfg)
    data, key = LeWMSuite._data(cfg, env, tmp_path)
    [entry] = tmp_path.glob("*.npz")
    flip_inside(entry, data["actions"].tobytes()[:16])
    again, key2 = LeWMSuite._data(cfg, env, tmp_path)
    assert key2 == key and np.array_equal(again["actions"], data["actions"])
    assert "does not load (BadZipFile); generating it again" in capsys.readouterr().err
