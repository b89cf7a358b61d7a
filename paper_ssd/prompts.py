"""Prompt sets: prompts that ship with every Python (the offline stand-in for the paper's four
sets), the paper's four sets from the hub, and Spec-Bench's questions from its repository.

Code prompts (the paper's HumanEval role): a function's signature and docstring from the
standard library, to be completed. Prose prompts (the Alpaca / UltraFeedback role): the
opening of a module docstring. Files are taken in a fixed shuffled order, so the same Python
gives the same prompts; the text is returned with its source for the report.
"""

from __future__ import annotations

import ast
import hashlib
import json
import random
import sysconfig
import urllib.request
from collections import Counter
from pathlib import Path


def _modules(seed: int) -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(root.glob("*.py"))
    random.Random(seed).shuffle(files)
    return files


def code_prompts(n: int, seed: int = 0, max_chars: int = 400) -> list[dict]:
    out = []
    for path in _modules(seed):
        if len(out) == n:
            break
        try:
            source = path.read_text(encoding="utf-8")
            tree = ast.parse(source)
        except (SyntaxError, UnicodeDecodeError):
            continue
        lines = source.splitlines(keepends=True)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and ast.get_docstring(node) and node.body[1:]:
                start, end = node.lineno - 1, node.body[0].end_lineno  # signature + docstring
                text = "".join(lines[start:end])
                if len(text) <= max_chars:
                    out.append({"kind": "code", "source": f"{path.name}:{node.name}", "text": text + "\n"})
                    break
    if len(out) < n:
        raise ValueError(f"found only {len(out)} code prompts in the standard library, wanted {n}")
    return out


def prose_prompts(n: int, seed: int = 0, min_chars: int = 150, max_chars: int = 400) -> list[dict]:
    out = []
    for path in _modules(seed + 1):
        if len(out) == n:
            break
        try:
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        except (SyntaxError, UnicodeDecodeError):
            continue
        if doc and len(doc) >= min_chars:
            text = doc[:max_chars].rsplit(" ", 1)[0]
            out.append({"kind": "prose", "source": path.name, "text": text})
    if len(out) < n:
        raise ValueError(f"found only {len(out)} prose prompts in the standard library, wanted {n}")
    return out


def stdlib_prompts(n: int, seed: int = 0) -> list[dict]:
    """n prompts, alternating code and prose."""
    code, prose = code_prompts((n + 1) // 2, seed), prose_prompts(n // 2, seed)
    mixed = [p for pair in zip(code, prose, strict=False) for p in pair]
    return (mixed + code[len(prose):])[:n]


# The paper's four prompt sets as the authors' data script prepares them (raw text, no chat template,
# tokenised without special tokens: ``paper_token_ids``): hub dataset, config, split, and how a row
# becomes a prompt. Loaded with the ``datasets`` package where the hub is reachable.
PAPER_SETS = {
    "humaneval": ("openai/openai_humaneval", None, "test", lambda r: r["prompt"]),
    "alpaca": ("tatsu-lab/alpaca", None, "train",
               lambda r: r["instruction"] + (f"\n\n{r['input']}" if r.get("input", "").strip() else "")),
    "gsm8k": ("openai/gsm8k", "main", "train", lambda r: r["question"]),
    "ultrafeedback": ("openbmb/UltraFeedback", None, "train", lambda r: r["instruction"]),
}


def paper_token_ids(tokenizer, prompts: list[dict]) -> list[list[int]]:
    """The prompts' token ids as the authors' benchmark makes them: no BOS or other special token."""
    return [tokenizer(p["text"], add_special_tokens=False)["input_ids"] for p in prompts]


def paper_prompts(per_set: int, sets: tuple[str, ...] = tuple(PAPER_SETS), load_dataset=None) -> list[dict]:
    """The first ``per_set`` prompts of each of the paper's sets (the paper: 128 each), in the
    same record shape as the offline prompts. ``load_dataset`` defaults to the datasets package's."""
    if load_dataset is None:
        try:
            from datasets import load_dataset
        except ImportError as err:
            raise ImportError("the paper's prompt sets need the `datasets` package (pip install 'paperclub[gpu]'); "
                              "prompt_set=stdlib uses prompts that ship with Python") from err
    out = []
    for name in sets:
        if name not in PAPER_SETS:
            raise ValueError(f"unknown prompt set {name!r}; known: {', '.join(PAPER_SETS)}")
        hub_id, config, split, text = PAPER_SETS[name]
        rows = load_dataset(hub_id, config, split=split)
        for i in range(min(per_set, len(rows))):
            out.append({"kind": name, "source": f"{hub_id}[{split}][{i}]", "text": text(rows[i])})
    return out


# Spec-Bench (Xia et al., ACL Findings 2024), the speculative-decoding benchmark: 480 questions, 80 in each of
# six categories, read from its repository at a pinned commit. Its MT-Bench rows keep MT-Bench's eight
# categories; Spec-Bench's own evaluation (evaluation/speed.py) counts them as one, "mt_bench".
SPEC_BENCH_REPO, SPEC_BENCH_COMMIT = "hemingkx/Spec-Bench", "059ada9e480c496a8e6f3fef131c5994075f163a"
SPEC_BENCH_FILE = "data/spec_bench/question.jsonl"
SPEC_BENCH_CATEGORIES = ("mt_bench", "translation", "summarization", "qa", "math_reasoning", "rag")
SPEC_BENCH_PER_CATEGORY = 80
MT_BENCH_CATEGORIES = frozenset({"writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem",
                                 "humanities"})


def spec_bench_url(commit: str = SPEC_BENCH_COMMIT) -> str:
    """Where the question file of ``commit`` is served."""
    return f"https://raw.githubusercontent.com/{SPEC_BENCH_REPO}/{commit}/{SPEC_BENCH_FILE}"


def spec_bench_cached(cache: str | Path, commit: str = SPEC_BENCH_COMMIT) -> Path:
    """Where ``fetch_spec_bench`` keeps the question file of ``commit``."""
    return Path(cache) / "spec_bench" / commit / "question.jsonl"


def fetch_spec_bench(cache: str | Path, commit: str = SPEC_BENCH_COMMIT, urlretrieve=None) -> Path:
    """The question file of ``commit``: the cached copy, else downloaded into the cache (whole or not at all)."""
    path = spec_bench_cached(cache, commit)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_suffix(".part")
        try:
            (urlretrieve or urllib.request.urlretrieve)(spec_bench_url(commit), part)
        except OSError as exc:
            raise OSError(f"Spec-Bench's questions not cached in {path.parent} and not downloaded from "
                          f"{spec_bench_url(commit)} ({exc}); give a local copy with spec_bench_path=...") from exc
        part.replace(path)
    return path


def spec_bench_category(name: str) -> str:
    """A row's category as Spec-Bench counts it: MT-Bench's eight categories are mt_bench."""
    return "mt_bench" if name in MT_BENCH_CATEGORIES else name


def _spec_bench_rows(path: Path) -> list[dict]:
    """The file's questions, each with an id, a category and a first turn of text; else a one-line error."""
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            ok = isinstance(row["question_id"], int | str) and isinstance(row["category"], str) \
                and isinstance(row["turns"][0], str) and row["turns"][0].strip()
        except (ValueError, KeyError, IndexError, TypeError):
            ok = False
        if not ok:
            raise ValueError(f"{path}: line {n} is not a Spec-Bench question (a question_id, a category and "
                             "turns whose first is text)")
        rows.append(row)
    return rows


def spec_bench_prompts(path: str | Path, per_category: int, sha256: str = "") -> tuple[list[dict], str]:
    """The first ``per_category`` questions of each Spec-Bench category (in file order; categories in
    Spec-Bench's order) as prompt records, and the file's sha256. A prompt is a question's first turn, raw
    (no chat template, tokenised without special tokens, as the paper's sets); MT-Bench's second turns,
    which follow the model's own first answer in Spec-Bench's protocol, are left out. The file must hold
    Spec-Bench's 480 questions (80 per category, ids unique) and, where ``sha256`` is given, have that hash."""
    path = Path(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if sha256 and digest != sha256.lower():
        raise ValueError(f"{path}: sha256 {digest} is not the pinned {sha256} (spec_bench_sha256)")
    rows = _spec_bench_rows(path)
    counts = Counter(spec_bench_category(r["category"]) for r in rows)
    if counts != dict.fromkeys(SPEC_BENCH_CATEGORIES, SPEC_BENCH_PER_CATEGORY):
        raise ValueError(f"{path}: not Spec-Bench's question file: wanted {SPEC_BENCH_PER_CATEGORY} questions in each "
                         f"of {', '.join(SPEC_BENCH_CATEGORIES)}; found {dict(counts)}")
    if len({r["question_id"] for r in rows}) != len(rows):
        raise ValueError(f"{path}: question ids repeat; not Spec-Bench's question file")
    if not 1 <= per_category <= SPEC_BENCH_PER_CATEGORY:
        raise ValueError(f"spec_bench must be 1..{SPEC_BENCH_PER_CATEGORY} questions per category, got {per_category}")
    out = []
    for category in SPEC_BENCH_CATEGORIES:
        mine = [r for r in rows if spec_bench_category(r["category"]) == category][:per_category]
        out += [{"kind": category, "source": f"spec_bench[{r['question_id']}]", "text": r["turns"][0]} for r in mine]
    return out, digest
