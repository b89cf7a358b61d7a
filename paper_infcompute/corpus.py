"""The training corpus: Python's standard-library source by default, or any text directory.

Files are selected deterministically (sorted relative paths, shuffled with a fixed seed);
validation takes whole files first, training the next files, so the two never share a
file. The exact bytes are fingerprinted (sha256) so every result names the data it saw.
Tokens are bytes by default (vocabulary 256), so "parameters" are transformer weights and
not mostly embeddings; an optional GPT-2 BPE reads a local `gpt2.tiktoken` vocabulary file.
"""

from __future__ import annotations

import hashlib
import random
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class CorpusSpec:
    source: str = "stdlib"  # "stdlib" or a directory of text files
    pattern: str = "*.py"
    train_bytes: int = 25_000
    val_bytes: int = 32_000
    seed: int = 0
    tokenizer: str = "bytes"  # "bytes" or a path to a gpt2.tiktoken vocabulary file


@dataclass
class Corpus:
    train: np.ndarray  # int64 token ids
    val: np.ndarray
    vocab_size: int
    sha256: str
    train_files: list[str]
    val_files: list[str]


def _files(spec: CorpusSpec) -> tuple[Path, list[Path]]:
    root = Path(sysconfig.get_paths()["stdlib"]) if spec.source == "stdlib" else Path(spec.source)
    if not root.is_dir():
        raise FileNotFoundError(f"corpus directory not found: {root}")
    # top level only for the stdlib: no tests or vendored packages, and stable across patch releases
    found = root.glob(spec.pattern) if spec.source == "stdlib" else root.rglob(spec.pattern)
    files = sorted((p for p in found if p.is_file()), key=lambda p: str(p.relative_to(root)))
    if not files:
        raise FileNotFoundError(f"no files matching {spec.pattern!r} under {root}")
    random.Random(spec.seed).shuffle(files)
    return root, files


def read_document(path: Path) -> bytes:
    """A text file's bytes; for JSON-lines shards (``.jsonl``, ``.jsonl.gz``, as DCLM-baseline and
    most web corpora ship), the records' ``text`` fields separated by blank lines."""
    name = path.name
    if name.endswith((".jsonl", ".jsonl.gz")):
        import gzip
        import json

        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as fh:
            return "\n\n".join(json.loads(line)["text"] for line in fh if line.strip()).encode()
    return path.read_bytes()


def _take(files: list[Path], start: int, budget: int) -> tuple[bytes, list[Path], int]:
    out, used, i = [], [], start
    size = 0
    while size < budget and i < len(files):
        data = read_document(files[i])
        out.append(data[: budget - size])
        used.append(files[i])
        size += len(out[-1])
        i += 1
    if size < budget:
        raise ValueError(f"corpus too small: wanted {budget} bytes, found {size}")
    return b"".join(out), used, i


def encode(text: bytes, tokenizer: str) -> tuple[np.ndarray, int]:
    if tokenizer == "bytes":
        return np.frombuffer(text, dtype=np.uint8).astype(np.int64), 256
    path = Path(tokenizer)
    if not path.is_file():
        raise FileNotFoundError(f"tokenizer vocabulary not found: {path} (use tokenizer=bytes, or a local "
                                "gpt2.tiktoken file, e.g. from the openai-whisper source distribution)")
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    enc = tiktoken.Encoding(
        name="gpt2-local", mergeable_ranks=load_tiktoken_bpe(str(path)),
        pat_str=r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
        special_tokens={"<|endoftext|>": 50256})
    return np.asarray(enc.encode_ordinary(text.decode("utf-8", errors="replace")), dtype=np.int64), enc.n_vocab


def load(spec: CorpusSpec) -> Corpus:
    root, files = _files(spec)
    val, val_files, nxt = _take(files, 0, spec.val_bytes)
    train, train_files, _ = _take(files, nxt, spec.train_bytes)
    sha = hashlib.sha256(b"train\0" + train + b"val\0" + val).hexdigest()
    train_ids, vocab = encode(train, spec.tokenizer)
    val_ids, _ = encode(val, spec.tokenizer)
    return Corpus(train_ids, val_ids, vocab, sha, [str(p.relative_to(root)) for p in train_files],
                  [str(p.relative_to(root)) for p in val_files])
