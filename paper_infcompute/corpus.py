"""The training corpus: Python's standard-library source by default, or any text directory.

Files are selected deterministically (sorted relative paths, shuffled with a fixed seed);
validation takes whole files first, training the next files, so the two never share a
file. The exact bytes are fingerprinted (sha256) so every result names the data it saw.
Tokens are bytes by default (vocabulary 256), so "parameters" are transformer weights and
not mostly embeddings; GPT-2's BPE reads a local `gpt2.tiktoken` vocabulary file, and any Hugging
Face `tokenizer.json` (the paper's Llama 3, GPT-2's) is read from a path or the hub. Tokenising
streams: the text is read a document at a time and, with a cache, its ids go straight to memory-mapped
token files, so a corpus of gigabytes needs a tokeniser batch of memory, not the text and its ids.
"""

from __future__ import annotations

import codecs
import fnmatch
import hashlib
import itertools
import json
import os
import random
import re
import shutil
import sys
import sysconfig
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class CorpusSpec:
    source: str = "stdlib"  # "stdlib", a directory of text files, or hf://datasets/OWNER/NAME[@REVISION]
    pattern: str = "*.py"
    train_bytes: int = 25_000
    val_bytes: int = 32_000
    seed: int = 0
    # "bytes", a local gpt2.tiktoken file, a tokenizer.json (or its directory, or a hub id: LLAMA3, GPT2), or
    # "auto" (resolve_tokenizer: Llama 3 where there is access, GPT-2 otherwise)
    tokenizer: str = "bytes"


@dataclass
class Corpus:
    train: np.ndarray  # token ids (int64 in memory, or unsigned memory-mapped from a cache entry)
    val: np.ndarray
    vocab_size: int
    sha256: str
    train_files: list[str]
    val_files: list[str]
    revision: str = ""  # the commit of a hub dataset source


# A Hugging Face dataset repository as the corpus: hf://datasets/OWNER/NAME, or NAME@REVISION at one commit
HUB = "hf://datasets/"


@dataclass(frozen=True)
class Source:
    """Where the text files are: a local directory, or a hub dataset repository at one commit."""
    root: Path | None = None
    repo: str = ""
    revision: str = ""  # the commit read (a hub source only)

    def blocks(self, name: str) -> Iterator[bytes]:
        """A file's documents, a block at a time (``document_blocks``); a hub file is fetched once into the
        hub cache."""
        if self.root is not None:
            return document_blocks(self.root / name)
        from huggingface_hub import hf_hub_download

        return document_blocks(Path(hf_hub_download(self.repo, name, repo_type="dataset", revision=self.revision)))

    def names(self, pattern: str, recursive: bool = True) -> list[str]:
        """The files matching ``pattern`` (``*`` spans folders), by relative path, sorted."""
        if self.root is None:
            from huggingface_hub import HfApi

            listed = HfApi().list_repo_files(self.repo, repo_type="dataset", revision=self.revision)
            return sorted(n for n in listed if fnmatch.fnmatch(n, pattern))
        if not self.root.is_dir():
            raise FileNotFoundError(f"corpus directory not found: {self.root}")
        found = self.root.rglob(pattern) if recursive else self.root.glob(pattern)
        return sorted(str(p.relative_to(self.root)) for p in found if p.is_file())


def source_of(spec: CorpusSpec) -> Source:
    """The spec's source; a hub revision that is not a commit sha (a branch, a tag, none: ``main``) is
    resolved to the commit it names now (one hub request)."""
    if not spec.source.startswith(HUB):
        return Source(Path(sysconfig.get_paths()["stdlib"]) if spec.source == "stdlib" else Path(spec.source))
    repo, _, revision = spec.source.removeprefix(HUB).partition("@")
    if not re.fullmatch(r"[0-9a-f]{40}", revision):
        from huggingface_hub import HfApi

        revision = HfApi().dataset_info(repo, revision=revision or None).sha
    return Source(repo=repo, revision=revision)


def _files(spec: CorpusSpec) -> tuple[Source, list[str]]:
    source = source_of(spec)
    # top level only for the stdlib: no tests or vendored packages, and stable across patch releases
    files = source.names(spec.pattern, recursive=spec.source != "stdlib")
    if not files:
        raise FileNotFoundError(f"no files matching {spec.pattern!r} in {source.root or spec.source}")
    random.Random(spec.seed).shuffle(files)
    return source, files


def document_blocks(path: Path, block: int = 1 << 20) -> Iterator[bytes]:
    """A text file's bytes, ``block`` bytes at a time; for JSON-lines shards (``.jsonl``, ``.jsonl.gz``,
    ``.jsonl.zst`` or ``.jsonl.zstd``, as DCLM-baseline ships), the records' ``text`` fields separated by
    blank lines, a record at a time, decompressed as they are read (a shard is never whole in memory, and a
    reader that stops early leaves the rest of it, beyond a read-ahead buffer, undecompressed)."""
    if not path.name.endswith((".jsonl", ".jsonl.gz", ".jsonl.zst", ".jsonl.zstd")):
        with open(path, "rb") as fh:
            yield from iter(lambda: fh.read(block), b"")
        return
    with _open_text(path) as fh:
        separator = b""
        for line in fh:
            if line.strip():
                yield separator + json.loads(line)["text"].encode()
                separator = b"\n\n"


def _open_text(path: Path):
    if path.name.endswith(".gz"):
        import gzip

        return gzip.open(path, "rt", encoding="utf-8")
    if path.name.endswith((".zst", ".zstd")):
        import io

        import zstandard

        return io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), read_across_frames=True),
                                encoding="utf-8")
    return open(path, encoding="utf-8")


def _take(source: Source, files: list[str], start: int, budget: int) -> tuple[bytes, list[str], int]:
    """``budget`` bytes from whole documents from ``files[start]`` on (the last one cut), in memory."""
    used: list[str] = []
    data = b"".join(_read(source, files, start, budget, used))
    return data, used, start + len(used)


def _read(source: Source, files: list[str], start: int, budget: int, used: list[str]) -> Iterator[bytes]:
    """The documents from ``files[start]`` on, a block at a time, until ``budget`` bytes (the last one cut,
    the rest of its file not read); each file read is appended to ``used``. Too few bytes is an error,
    raised after the last file."""
    size, i = 0, start
    while size < budget and i < len(files):
        used.append(files[i])
        for block in source.blocks(files[i]):
            block = block[: budget - size]
            size += len(block)
            yield block
            if size >= budget:
                break
        i += 1
    if size < budget:
        raise ValueError(f"corpus too small: wanted {budget} bytes, found {size}")


# The paper's tokenizer (Llama 3, vocabulary 128,256; gated on the Hugging Face hub) and the public fallback.
LLAMA3 = "meta-llama/Meta-Llama-3-8B"
GPT2 = "openai-community/gpt2"


def resolve_tokenizer(name: str) -> str:
    """``auto``: the paper's Llama-3 tokenizer where it is here (the hub cache) or a hub token is set, GPT-2's
    (public) otherwise; any other name as given. Runs key their caches on the resolved name."""
    if name != "auto":
        return name
    from huggingface_hub import get_token, try_to_load_from_cache

    have = isinstance(try_to_load_from_cache(LLAMA3, "tokenizer.json"), str)
    return LLAMA3 if have or get_token() else GPT2


def _tokenizer_json(name: str) -> Path:
    """A local ``tokenizer.json`` for ``name``: the file, a directory holding it, or a hub repository id
    (fetched once into the hub cache; gated repositories need a token with access)."""
    path = Path(name).expanduser()
    if path.is_dir():
        path = path / "tokenizer.json"
    if path.is_file():
        return path
    if path.is_absolute() or name.startswith(".") or name.count("/") != 1:
        raise FileNotFoundError(f"tokenizer not found: {name} (use bytes, a gpt2.tiktoken file, a tokenizer.json, "
                                f"a directory holding one, or a hub id such as {GPT2} or {LLAMA3})")
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(name, "tokenizer.json"))


def _gpt2_tiktoken(path: Path):
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    return tiktoken.Encoding(
        name="gpt2-local", mergeable_ranks=load_tiktoken_bpe(str(path)),
        pat_str=r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
        special_tokens={"<|endoftext|>": 50256})


def vocab_size(tokenizer: str) -> int:
    """The vocabulary of a tokenizer (special tokens included), without tokenising anything."""
    if tokenizer == "bytes":
        return 256
    if tokenizer.endswith(".tiktoken"):
        return _gpt2_tiktoken(Path(tokenizer)).n_vocab
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(_tokenizer_json(tokenizer))).get_vocab_size(with_added_tokens=True)


def encoder_for(tokenizer: str) -> tuple[Callable[[Iterable[bytes]], Iterator[np.ndarray]], int]:
    """A streaming tokeniser and the vocabulary size: it takes the text as blocks of bytes and yields its
    token ids a batch at a time, never holding the whole text or all its ids. Bytes; GPT-2's BPE from a
    local ``gpt2.tiktoken``; or any Hugging Face ``tokenizer.json`` (``_tokenizer_json``), without special
    tokens. BPE tokenisers read the text as UTF-8 (invalid bytes replaced) in pieces of about 2^20
    characters cut after blank lines (``_pieces``), 64 pieces encoded in parallel; the ids do not depend on
    how the blocks split the text."""
    if tokenizer == "bytes":
        return (lambda blocks: (np.frombuffer(b, dtype=np.uint8) for b in blocks if b)), 256
    if tokenizer.endswith(".tiktoken"):
        path = Path(tokenizer)
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer vocabulary not found: {path} (use tokenizer=bytes, or a local "
                                    "gpt2.tiktoken file, e.g. from the openai-whisper source distribution)")
        enc = _gpt2_tiktoken(path)
        return (lambda blocks: (np.asarray(enc.encode_ordinary(p), dtype=np.uint32)
                                for p in _pieces(_decoded(blocks)))), enc.n_vocab
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(_tokenizer_json(tokenizer)))

    def hugging_face(blocks: Iterable[bytes]) -> Iterator[np.ndarray]:
        pieces = _pieces(_decoded(blocks))
        while batch := list(itertools.islice(pieces, 64)):
            # an Encoding holds far more than its ids: keep only those
            yield from (np.asarray(e.ids, dtype=np.uint32) for e in tok.encode_batch(batch, add_special_tokens=False))

    return hugging_face, tok.get_vocab_size(with_added_tokens=True)


def _decoded(blocks: Iterable[bytes]) -> Iterator[str]:
    """The blocks read as one UTF-8 text (a character may span two blocks), invalid bytes replaced."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    yield from (decoder.decode(b) for b in blocks)
    yield decoder.decode(b"", final=True)


def _pieces(texts: Iterable[str], size: int = 1 << 20) -> Iterator[str]:
    """The text ``texts`` make when joined, in pieces of at most ``size`` characters, each but the last
    ending after the last blank line within its first ``size`` characters where it has one."""
    buf, pos = "", 0
    for text in texts:
        buf, pos = buf[pos:] + text, 0
        while len(buf) - pos > size:
            cut = buf.rfind("\n\n", pos, pos + size) + 2
            end = cut if cut > pos + 1 else pos + size
            yield buf[pos:end]
            pos = end
    if pos < len(buf):
        yield buf[pos:]


def load(spec: CorpusSpec, cache: str | Path | None = None) -> Corpus:
    """The corpus ``spec`` names, tokenised. With ``cache``, the token ids are written once to files there
    (``tokens-<key>/``: ``train.bin`` and ``val.bin``, and ``meta.json`` with their checksums, the text's
    sha256 and the files read) and every later call, every job of a sweep, memory-maps them instead of
    reading and tokenising the text again. An entry is used only while the files it was made from keep
    their sizes and modification times and its token files match their sha256; otherwise it is made again."""
    if cache is None:
        return _tokenise(spec)
    from filelock import FileLock

    entry = Path(cache) / f"tokens-{hashlib.sha256(repr(asdict(spec)).encode()).hexdigest()[:16]}"
    entry.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{entry}.lock"):  # one job tokenises; the others wait, then map its files
        found = _open(entry, spec)
        if found is None:
            _write(entry, spec)
            found = _open(entry, spec)
    return found


def file_sha256(path: Path) -> str:
    """A file's sha256, read in blocks (token files run to gigabytes)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _stamps(spec: CorpusSpec, names: list[str], revision: str) -> dict[str, list]:
    """(size, modification time) of local text files and of a tokenizer file; a hub dataset's files are
    those of the commit read (``revision``), which an entry keeps."""
    paths = {} if revision else {n: source_of(spec).root / n for n in names}
    if spec.tokenizer != "bytes" and Path(spec.tokenizer).is_file():
        paths["<tokenizer>"] = Path(spec.tokenizer)
    stamps = {n: [p.stat().st_size, p.stat().st_mtime_ns] for n, p in paths.items() if p.is_file()}
    return {**stamps, "<revision>": [revision]} if revision else stamps


def _write(entry: Path, spec: CorpusSpec) -> None:
    """Tokenise the corpus straight into ``entry``'s token files (uint16 ids, or uint32 for larger
    vocabularies), made under a temporary name and renamed whole."""
    encode, vocab = encoder_for(spec.tokenizer)  # loaded once: the id width and the encoding
    dtype = np.dtype(np.uint16 if vocab <= 1 << 16 else np.uint32)
    tmp = entry.with_name(f".{entry.name}.{os.getpid()}.part")
    tmp.mkdir(parents=True, exist_ok=True)
    counts = dict.fromkeys(("train", "val"), 0)
    try:
        with open(tmp / "train.bin", "wb") as train, open(tmp / "val.bin", "wb") as val:
            out = {"train": train, "val": val}

            def sink(split: str, ids: np.ndarray) -> None:
                ids.astype(dtype).tofile(out[split])
                counts[split] += len(ids)

            corpus = _stream(spec, sink, (encode, vocab))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    tokens = {split: {"count": n, "dtype": dtype.name, "sha256": file_sha256(tmp / f"{split}.bin")}
              for split, n in counts.items()}
    meta = {"spec": asdict(spec), "sha256": corpus.sha256, "vocab_size": corpus.vocab_size, "tokens": tokens,
            "train_files": corpus.train_files, "val_files": corpus.val_files,
            "revision": corpus.revision, "stamps": _stamps(spec, corpus.val_files + corpus.train_files, corpus.revision)}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    shutil.rmtree(entry, ignore_errors=True)  # a stale or damaged entry (jobs mapping it keep their pages)
    tmp.rename(entry)


def _open(entry: Path, spec: CorpusSpec) -> Corpus | None:
    """The cached corpus, memory-mapped read-only; None if absent, stale or not matching its checksums."""
    try:
        meta = json.loads((entry / "meta.json").read_text())
        if meta["stamps"] != _stamps(spec, meta["val_files"] + meta["train_files"], meta.get("revision", "")):
            print(f"the corpus' files changed since {entry} was made; tokenising again", file=sys.stderr)
            return None
        arrays = {}
        for split, info in meta["tokens"].items():
            path = entry / f"{split}.bin"
            if file_sha256(path) != info["sha256"]:
                print(f"{path} does not match its checksum; tokenising again", file=sys.stderr)
                return None
            arrays[split] = np.memmap(path, dtype=info["dtype"], mode="r", shape=(info["count"],))
    except (OSError, KeyError, ValueError):
        return None
    return Corpus(arrays["train"], arrays["val"], meta["vocab_size"], meta["sha256"], meta["train_files"],
                  meta["val_files"], meta.get("revision", ""))


def _tokenise(spec: CorpusSpec) -> Corpus:
    """The corpus with its ids in memory (int64)."""
    ids: dict[str, list[np.ndarray]] = {"train": [], "val": []}
    corpus = _stream(spec, lambda split, chunk: ids[split].append(chunk))
    joined = {k: np.concatenate(v).astype(np.int64) if v else np.zeros(0, np.int64) for k, v in ids.items()}
    return replace(corpus, **joined)


def _stream(spec: CorpusSpec, sink: Callable[[str, np.ndarray], None], encoder: tuple | None = None) -> Corpus:
    """Read and tokenise the corpus, handing each split's ids to ``sink`` a batch at a time; the Corpus
    returned has its sha256 (of ``train\\0`` + training text + ``val\\0`` + held-out text), vocabulary and
    files, and no ids. Of the text, only the held-out split and one tokeniser batch are in memory at once.
    ``encoder``: ``encoder_for(spec.tokenizer)`` where the caller has it already."""
    source, files = _files(spec)
    encoder, vocab = encoder or encoder_for(spec.tokenizer)
    val, val_files, nxt = _take(source, files, 0, spec.val_bytes)  # validation takes the first files
    digest, train_files = hashlib.sha256(b"train\0"), []
    for ids in encoder(_hashed(_read(source, files, nxt, spec.train_bytes, train_files), digest)):
        sink("train", ids)
    digest.update(b"val\0" + val)
    for ids in encoder([val]):
        sink("val", ids)
    empty = np.zeros(0, np.int64)
    return Corpus(empty, empty, vocab, digest.hexdigest(), train_files, val_files, source.revision)


def _hashed(blocks: Iterable[bytes], digest) -> Iterator[bytes]:
    for block in blocks:
        digest.update(block)
        yield block
