"""Prompts that ship with every Python: the offline stand-in for the paper's four prompt sets.

Code prompts (the paper's HumanEval role): a function's signature and docstring from the
standard library, to be completed. Prose prompts (the Alpaca / UltraFeedback role): the
opening of a module docstring. Files are taken in a fixed shuffled order, so the same Python
gives the same prompts; the text is returned with its source for the report.
"""

from __future__ import annotations

import ast
import random
import sysconfig
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
