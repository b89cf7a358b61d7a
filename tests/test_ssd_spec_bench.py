"""Spec-Bench's loader (paper_ssd.prompts): categories as Spec-Bench counts them, the first turns, the
file's checks and hash, the cached download; and the suite's preflight need, on a stand-in file."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import pytest

from paper_ssd import prompts as sets
from suites.ssd import _spec_bench_need
from tests.spec_bench_rows import spec_bench_rows, write_spec_bench


def test_the_first_questions_of_each_category_in_spec_benchs_order(tmp_path):
    path = write_spec_bench(tmp_path / "question.jsonl")
    out, digest = sets.spec_bench_prompts(path, 2)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [p["kind"] for p in out] == [c for c in sets.SPEC_BENCH_CATEGORIES for _ in range(2)]
    # MT-Bench's writing and roleplay rows are both mt_bench; the first turn only, as written
    assert out[0] == {"kind": "mt_bench", "source": "spec_bench[1]", "text": "Question 1: say why."}
    assert out[1]["source"] == "spec_bench[2]"
    assert [p["source"] for p in out[2:4]] == ["spec_bench[81]", "spec_bench[82]"]
    assert out[-1] == {"kind": "rag", "source": "spec_bench[402]", "text": "A rag task, number 1."}
    assert len(sets.spec_bench_prompts(path, 80)[0]) == 480


def test_a_pinned_hash_is_insisted_on(tmp_path):
    path = write_spec_bench(tmp_path / "question.jsonl")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert sets.spec_bench_prompts(path, 1, digest.upper())[1] == digest
    with pytest.raises(ValueError, match=f"sha256 {digest} is not the pinned 0+ "):
        sets.spec_bench_prompts(path, 1, "0" * 64)


@pytest.mark.parametrize(("change", "message"), [
    (lambda rows: rows[:-1], r"not Spec-Bench's question file: wanted 80 .* 'rag': 79"),
    (lambda rows: rows + [{"question_id": 999, "category": "poetry", "turns": ["x"]}], "'poetry': 1"),
    (lambda rows: rows[:-1] + [{**rows[-1], "question_id": 1}], "question ids repeat"),
    (lambda rows: rows[:5] + [{"question_id": 6, "category": "writing", "turns": []}] + rows[6:], "line 6 is not"),
    (lambda rows: rows[:2] + [{"question_id": 3, "category": "writing", "prompt": "x"}] + rows[3:], "line 3 is not"),
])
def test_a_file_that_is_not_spec_benchs_is_one_line(tmp_path, change, message):
    path = write_spec_bench(tmp_path / "question.jsonl", change(spec_bench_rows()))
    with pytest.raises(ValueError, match=message) as err:
        sets.spec_bench_prompts(path, 1)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("n", [0, 81])
def test_questions_per_category_are_1_to_80(tmp_path, n):
    with pytest.raises(ValueError, match=f"1..80 questions per category, got {n}"):
        sets.spec_bench_prompts(write_spec_bench(tmp_path / "question.jsonl"), n)


def test_the_pinned_commits_file_is_downloaded_once_whole(tmp_path):
    calls = []

    def urlretrieve(url, dest):
        calls.append(url)
        write_spec_bench(dest)

    path = sets.fetch_spec_bench(tmp_path, urlretrieve=urlretrieve)
    assert sets.fetch_spec_bench(tmp_path, urlretrieve=urlretrieve) == path == sets.spec_bench_cached(tmp_path)
    assert calls == [f"https://raw.githubusercontent.com/hemingkx/Spec-Bench/{sets.SPEC_BENCH_COMMIT}/"
                     "data/spec_bench/question.jsonl"]
    assert len(sets.spec_bench_prompts(path, 1)[0]) == 6

    def offline(url, dest):
        dest.write_text('{"question_id": 1')  # a download cut off part-way
        raise OSError("unreachable")

    with pytest.raises(OSError, match="not cached in .* and not downloaded from .*; give a local copy"):
        sets.fetch_spec_bench(tmp_path / "other", urlretrieve=offline)
    assert not sets.spec_bench_cached(tmp_path / "other").exists()


def test_the_preflight_names_the_file_it_needs(tmp_path):
    cfg = SimpleNamespace(spec_bench=16, spec_bench_path=str(tmp_path / "missing.jsonl"), cache_dir=str(tmp_path))
    (need,) = _spec_bench_need(cfg)
    assert not need.ok and "Spec-Bench's questions (spec_bench_path)" in need.line()
    write_spec_bench(sets.spec_bench_cached(tmp_path / "ssd"))  # no path: the pinned commit's, cached here
    (need,) = _spec_bench_need(SimpleNamespace(**{**vars(cfg), "spec_bench_path": ""}))
    assert need.ok and need.found == "a local copy"
    assert _spec_bench_need(SimpleNamespace(**{**vars(cfg), "spec_bench": 0})) == []


def test_per_category_rates_pool_each_categorys_questions():
    """Acceptance and hit rates per category are ratios of the category's summed counts (by hand)."""
    engine = pytest.importorskip("paper_ssd.engine")
    from suites.ssd import SpecBench, _exactness_with, _spec_bench_metrics

    def stats(drafted, accepted, predicted, hits):
        return engine.Stats(new_tokens=8, rounds=4, drafted=drafted, accepted=accepted, predicted=predicted,
                            hits=hits, decode_s=0.5)

    kinds = ["mt_bench", "mt_bench", "rag"]
    sd = [stats(8, 6, 0, 0), stats(8, 2, 0, 0), stats(4, 4, 0, 0)]
    ssd = [stats(8, 6, 3, 3), stats(8, 2, 3, 0), stats(4, 4, 2, 1)]
    sb = SpecBench(kinds, {"ar": [stats(0, 0, 0, 0)] * 3, "sd": sd, "ssd_jit": ssd, "ssd_fast": ssd},
                   [1.0] * 8 + [0.0], [{"mode": "sd", "prompt": 2, "position": 5, "top2_gap": 1.0, "explained": False}])
    m = _spec_bench_metrics(sb)
    assert m["spec_bench_mt_bench_sd_acceptance"] == 8 / 16 and m["spec_bench_rag_sd_acceptance"] == 1.0
    assert m["spec_bench_mt_bench_ssd_jit_hit_rate"] == 3 / 6 and m["spec_bench_rag_ssd_fast_hit_rate"] == 1 / 2
    assert m["spec_bench_mt_bench_sd_tokens_per_round"] == 16 / 8 and m["spec_bench_rag_ar_tokens_per_s"] == 16.0
    assert m["spec_bench_greedy_exact_match"] == 8 / 9
    # Spec-Bench's streams join the run's as units of the one greedy-identity claim, their divergences marked
    from suites.ssd import Exactness

    both = _exactness_with(Exactness([1.0, 1.0], [], [True], {}), sb)
    assert both.greedy == [1.0] * 10 + [0.0] and both.divergences[0]["prompt_set"] == "spec_bench"
