"""A long-running reader: memory stays flat over 1,000 different questions."""

from __future__ import annotations

import gc
import os
import random

import pytest

from rag import open_index

from conftest import SEED_QUESTION, SEEDS

QUESTIONS = 1000
# The real model answers about two questions a second on a busy 2-core machine; 1,000 would take minutes,
# so CI asks it 250 (docs/reliability.md records a 1,000-question run).
REAL_MODEL_QUESTIONS = 250
WARMUP = 100


def rss_mib() -> float:
    """Resident set size of this process in MiB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


def _questions(n: int) -> list[str]:
    """n different questions made of words from the seed articles (distinct, so no cache hides a leak)."""
    words = sorted({w.strip(".,“”\"'()").lower() for p in SEEDS.glob("*.txt") for w in p.read_text().split()} - {""})
    rng = random.Random(7)
    return [f"{' '.join(rng.sample(words, 6))} {i}?" for i in range(n)]


def _measure(idx, n: int = QUESTIONS) -> tuple[float, float, float]:
    qs = _questions(WARMUP + n)
    for q in qs[:WARMUP]:
        idx.query(q)
    gc.collect()
    start = rss_mib()
    peak = start
    for i, q in enumerate(qs[WARMUP:]):
        answer = idx.query(q)
        assert answer.text
        if i % 100 == 0:
            peak = max(peak, rss_mib())
    gc.collect()
    end = rss_mib()
    print(
        f"\nRSS over {n} questions: start {start:.1f} MiB, end {end:.1f} MiB, "
        f"growth {end - start:+.1f} MiB, peak {max(peak, end):.1f} MiB"
    )
    return start, end, max(peak, end)


def test_memory_flat_over_many_questions(fake_seed_index):
    folder, emb = fake_seed_index
    idx = open_index(folder, embedder=emb)
    start, end, _ = _measure(idx)
    assert end - start < 10, f"RSS grew {end - start:.1f} MiB over {QUESTIONS} questions"
    assert not idx.query(SEED_QUESTION).abstained


@pytest.mark.model
@pytest.mark.slow
def test_memory_flat_with_the_real_model(seed_index_dir, model_embedder):
    idx = open_index(seed_index_dir, embedder=model_embedder)
    start, end, _ = _measure(idx, REAL_MODEL_QUESTIONS)
    # The embedder keeps up to 1,024 recent query vectors (1.5 KiB each): about 1.5 MiB by design.
    assert end - start < 20, f"RSS grew {end - start:.1f} MiB over {REAL_MODEL_QUESTIONS} questions"
    idx.close()
