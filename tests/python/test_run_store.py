"""icgt.study.run_store: run folders' locks, partial writes and reuse checks, on plain folders."""

from __future__ import annotations

import threading
import time

import pytest

from icgt.study import config as configs
from icgt.study.run_store import (NotAnIcgtRunError, OtherConfigRunError, check_reusable, is_run, partial_folder,
                                  run_lock, run_name)


def test_the_lock_file_exists_only_while_the_lock_is_held(tmp_path):
    folder = tmp_path / "run"
    with run_lock(folder, progress=False) as held:
        assert held and (tmp_path / ".run.lock").is_file()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError), run_lock(folder, progress=False):
        raise RuntimeError("a failed run")
    assert list(tmp_path.iterdir()) == []


def test_without_waiting_a_held_lock_is_refused_at_once(tmp_path):
    folder = tmp_path / "run"
    with run_lock(folder, progress=False):
        outcome = []
        thread = threading.Thread(target=lambda: outcome.append(run_lock(folder, wait=False).__enter__()))
        thread.start()
        thread.join(timeout=10)
        assert outcome == [False]
    assert list(tmp_path.iterdir()) == []


def test_waiters_take_turns_although_each_holder_removes_the_file(tmp_path):
    """Eight threads wait on one run's lock; each holder removes the file as it lets go, so a waiter
    may hold a removed file: it must lock the new one instead, and never two hold it at once."""
    folder, inside, overlaps = tmp_path / "run", [], []

    def work():
        with run_lock(folder, progress=False):
            inside.append(1)
            if len(inside) > 1:
                overlaps.append(len(inside))
            time.sleep(0.02)
            inside.pop()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert overlaps == [] and not any(thread.is_alive() for thread in threads)
    assert list(tmp_path.iterdir()) == []


def test_a_partial_folder_becomes_the_run_only_when_whole(tmp_path):
    folder = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt), partial_folder(folder) as partial:
        (partial / "results.npz").write_text("half")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with partial_folder(folder) as partial:
        (partial / "run.json").write_text("{}")
        (partial / "results.npz").write_text("whole")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run"] and is_run(folder)


def test_reuse_is_decided_by_the_config(tmp_path):
    config = configs.preset("ring")
    folder = tmp_path / run_name(config)
    folder.mkdir()
    with pytest.raises(NotAnIcgtRunError, match="exists and is not an icgt run"):
        check_reusable(folder, config, force=False)
    (folder / "results.npz").write_text("")
    (folder / "run.json").write_text('{"config": %s}' % __import__("json").dumps(config.to_dict()))
    assert check_reusable(folder, config, force=False) is True
    assert check_reusable(folder, config, force=True) is False
    with pytest.raises(OtherConfigRunError, match="seed 0 there, 3 here"):
        check_reusable(folder, configs.preset("ring", seed=3), force=False)
