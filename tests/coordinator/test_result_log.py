"""The run's results log: records survive, torn lines are skipped, writers never interleave."""

from __future__ import annotations

import errno
import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest

from coordinator.core.io import AppendFile
from coordinator.engine.result_log import ResultLog, recorded
from tests.coordinator.steps_for_tests import remove_record

REPO = Path(__file__).resolve().parents[2]


def _rec(n: int) -> dict[str, object]:
    return {"status": "done", "attempts": 1, "metrics": {"n": n}}


def test_a_record_is_found_by_this_process_and_by_a_later_one(tmp_path):
    log = ResultLog(tmp_path)
    assert log.get("a", 1) is None
    log.append("a", 1, _rec(1))  # type: ignore[arg-type]
    assert log.get("a", 1) == _rec(1)
    assert log.get("a", 2) is None  # another dispatch of the same task has no record
    later = ResultLog(tmp_path)
    assert later.get("a", 1) == _rec(1)
    got = later.get("a", 1)
    assert got is not None
    got["recovered"] = True  # the caller's copy; the log's own record is unchanged
    assert later.get("a", 1) == _rec(1)


def test_a_reader_sees_records_another_writer_appended_after_its_first_look(tmp_path):
    reader, writer = ResultLog(tmp_path), ResultLog(tmp_path)
    writer.append("a", 1, _rec(1))  # type: ignore[arg-type]
    assert reader.get("a", 1) == _rec(1)
    assert reader.get("b", 1) is None
    writer.append("b", 1, _rec(2))  # type: ignore[arg-type]
    assert reader.get("b", 1) == _rec(2)


def test_a_torn_last_line_is_skipped_and_ended_before_the_next_record(tmp_path):
    log = ResultLog(tmp_path)
    log.append("a", 1, _rec(1))  # type: ignore[arg-type]
    line = orjson.dumps({"task": "b", "dispatch": 1, "record": _rec(2)})
    with open(tmp_path / "results.jsonl", "ab") as fh:
        fh.write(line[: len(line) // 2])  # a process killed in the middle of its write
    resumed = ResultLog(tmp_path)
    assert resumed.get("b", 1) is None  # b runs again
    resumed.append("b", 1, _rec(3))  # type: ignore[arg-type]
    resumed.append("c", 1, _rec(4))  # type: ignore[arg-type]
    lines = (tmp_path / "results.jsonl").read_bytes().split(b"\n")
    assert lines[1] == line[: len(line) // 2]  # the torn line stays, on a line of its own
    assert recorded(tmp_path) == {("a", 1): _rec(1), ("b", 1): _rec(3), ("c", 1): _rec(4)}


def test_garbled_and_foreign_lines_are_skipped(tmp_path):
    (tmp_path / "results.jsonl").write_bytes(b'not json\n[1, 2]\n{"task": "a"}\n{"task": "a", "dispatch": "1", '
                                             b'"record": {}}\n')
    log = ResultLog(tmp_path)
    assert log.get("a", 1) is None
    log.append("a", 1, _rec(1))  # type: ignore[arg-type]
    assert recorded(tmp_path) == {("a", 1): _rec(1)}


def test_a_full_disk_names_the_log_and_the_next_record_starts_a_new_line(tmp_path, monkeypatch):
    log = ResultLog(tmp_path)
    log.append("a", 1, _rec(1))  # type: ignore[arg-type]
    real = AppendFile._write

    def half_then_full(self: AppendFile, fd: int, data: bytes) -> int:
        return real(self, fd, data[: len(data) // 2])  # a short write: the disk filled up mid-line

    monkeypatch.setattr(AppendFile, "_write", half_then_full)
    with pytest.raises(OSError) as info:
        log.append("b", 1, _rec(2))  # type: ignore[arg-type]
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "results.jsonl")
    monkeypatch.setattr(AppendFile, "_write", real)
    log.append("c", 1, _rec(3))  # type: ignore[arg-type]
    assert recorded(tmp_path) == {("a", 1): _rec(1), ("c", 1): _rec(3)}


def test_records_of_an_earlier_version_under_results_are_still_found(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "build_x.2.json").write_bytes(orjson.dumps(_rec(7)))
    log = ResultLog(tmp_path)
    assert log.get("build/x", 2) == _rec(7)  # the old name made the id safe for a file name
    assert log.get("build/x", 1) is None


def test_remove_record_drops_one_dispatch_only(tmp_path):
    log = ResultLog(tmp_path)
    for t in ("a", "b"):
        log.append(t, 1, _rec(1))  # type: ignore[arg-type]
    log.append("b", 2, _rec(2))  # type: ignore[arg-type]
    assert remove_record(tmp_path, "b", 1)
    assert not remove_record(tmp_path, "b", 1)
    assert set(recorded(tmp_path)) == {("a", 1), ("b", 2)}


def test_threads_and_processes_appending_at_once_never_interleave(tmp_path):
    log = ResultLog(tmp_path)
    big = "x" * 3000  # records of a few kB, as a task with notes and metrics has

    def write(prefix: str) -> None:
        for i in range(150):
            log.append(f"{prefix}{i}", 1, {"status": "done", "notes": [big]})  # type: ignore[typeddict-item]

    script = ("import sys; from pathlib import Path; from coordinator.engine.result_log import ResultLog\n"
              "log = ResultLog(Path(sys.argv[1]))\n"
              "for i in range(300): log.append(f'p{sys.argv[2]}-{i}', 1, {'status': 'done', 'notes': ['y' * 3000]})\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), str(n)], cwd=REPO) for n in range(2)]
    threads = [threading.Thread(target=write, args=(f"t{n}-",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    lines = (tmp_path / "results.jsonl").read_bytes().splitlines()
    assert len(lines) == 4 * 150 + 2 * 300
    assert all(orjson.loads(raw)["record"]["status"] == "done" for raw in lines)  # every line whole
    assert len(recorded(tmp_path)) == 1200
