"""The generate answer cache: durable appends, broken lines skipped with file:line, never fatal."""

from __future__ import annotations

import logging
import threading

from pipeline.gen_cache import AnswerCache, cache_file


def test_answers_survive_a_reopen_and_concurrent_puts(tmp_path):
    path = cache_file(tmp_path, "openai_compatible", "llama3.1:8b-instruct", "qa")
    assert path == tmp_path / "openai_compatible" / "llama3.1_8b-instruct" / "qa.jsonl"
    cache = AnswerCache(path)
    threads = [threading.Thread(target=lambda k=k: cache.put(f"k{k}", {"n": k}, id=f"qa-{k:05d}", draw=0))
               for k in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    again = AnswerCache(path)
    assert len(again) == 40 and again.get("k7") == {"n": 7} and again.skipped == 0


def test_broken_and_cut_off_lines_are_skipped_and_the_next_answer_starts_a_fresh_line(tmp_path, caplog):
    path = tmp_path / "qa.jsonl"
    cache = AnswerCache(path)
    cache.put("a", {"n": 1})
    cache.put("b", {"n": 2})
    with path.open("ab") as fh:
        fh.write(b'{"v": 1, "key": "c", "answer": {"n"')  # a kill in the middle of an append
    text = path.read_bytes().replace(b'"key":"b"', b'"key":"b"oops', 1)  # and a hand edit
    path.write_bytes(text)
    with caplog.at_level(logging.WARNING, logger="pipeline.gen_cache"):
        cache = AnswerCache(path)
    assert cache.skipped == 2 and "a" in cache and "b" not in cache and "c" not in cache
    assert f"{path}:2: skipped a broken cache line" in caplog.text
    assert f"{path}:3: skipped a broken cache line" in caplog.text
    cache.put("c", {"n": 3})
    assert AnswerCache(path).get("c") == {"n": 3}
