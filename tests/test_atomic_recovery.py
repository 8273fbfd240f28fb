"""Atomic writes whose process is killed outright (SIGKILL: no clean-up runs) are undone by the next write into
the same folder: the folder holds exactly the set from before the killed run, and no hidden temporaries."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tokensphere.io import atomic
from tokensphere.io.atomic import atomic_entries, atomic_folder, recover_folder

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and process ids as on POSIX")


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones included), by relative path, with its text."""
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _killed(code: str, kill_at_replace: int | None = None) -> None:
    """Run ``code`` in a child process that SIGKILLs itself, at its ``kill_at_replace``-th os.replace when given
    (counted from the end of the set-up below), else where the code says."""
    prologue = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from tokensphere.io.atomic import atomic_entries, atomic_folder, atomic_path
        real, calls = os.replace, [0]
        def counted(a, b):
            calls[0] += 1
            if calls[0] == {kill_at_replace!r}:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(a, b)
        os.replace = counted
        def die():
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", prologue + textwrap.dedent(code)], capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr


def _old_set(folder: Path) -> dict[str, str]:
    folder.mkdir()
    (folder / "a.txt").write_text("old a")
    (folder / "b").mkdir()
    (folder / "b" / "x.txt").write_text("old b/x")
    (folder / "b" / "y.txt").write_text("old b/y")
    (folder / "keep.txt").write_text("not in the set")
    return _snapshot(folder)


def test_entries_moved_aside_by_a_killed_run_are_put_back(tmp_path):
    folder = tmp_path / "out"
    before = _old_set(folder)
    _killed(f"""
        with atomic_entries({str(folder)!r}, ["a.txt", "b", "c.txt"]) as p:
            (p / "a.txt").write_text("half written")
            (p / "c.txt").write_text("new c")
            die()
    """)
    assert any(".aside-" in h for h in _hidden(folder))  # what the kill left: the old entries hidden aside
    assert (folder / "a.txt").read_text() == "half written"
    with atomic_entries(folder, ["z.txt"]) as p:  # the next write into the folder recovers first
        (p / "z.txt").write_text("z")
    assert _snapshot(folder) == {**before, "z.txt": "z"} and _hidden(folder) == []  # c.txt, new, removed too


@pytest.mark.parametrize("kill_at", [1, 2, 3, 4])
def test_entries_killed_while_moving_aside_are_put_back(tmp_path, kill_at):
    """Killed at the rename of a.txt aside (1), of b (2), of the manifest (3, after both: nothing written yet)
    or at the first rename inside the writer (4): the old entries all come back."""
    folder = tmp_path / "out"
    before = _old_set(folder)
    _killed(f"""
        with atomic_entries({str(folder)!r}, ["a.txt", "b", "c.txt"]) as p:
            (p / "c.txt").write_text("new c")
            os.replace(p / "c.txt", p / "a.txt")
    """, kill_at_replace=kill_at)
    recover_folder(folder)
    assert _snapshot(folder) == before and _hidden(folder) == []


@pytest.mark.parametrize("kill_at", range(1, 9))
def test_a_set_commit_killed_at_any_rename_is_rolled_back_or_complete(tmp_path, kill_at):
    """The commit of atomic_folder into an existing folder renames: its manifest (1), the old a.txt and b/x.txt
    aside (2, 3), the three new entries in (4–6), the backup to scrap (7); killed at any of them, or (8) half-way
    through deleting the backup after the last rename, the folder is the old set or the new one whole."""
    folder = tmp_path / "out"
    before = _old_set(folder)
    _killed(f"""
        import shutil
        real_rmtree = shutil.rmtree
        def rmtree_then_die(path, *args, **kwargs):  # deletes one old entry of the backup, then is killed
            entries = sorted(q for q in Path(path).iterdir() if q.name.isdigit()) if {kill_at} == 8 else []
            if entries:
                real_rmtree(entries[0]) if entries[0].is_dir() else entries[0].unlink()
                die()
            return real_rmtree(path, *args, **kwargs)
        shutil.rmtree = rmtree_then_die
        with atomic_folder({str(folder)!r}) as stage:
            (stage / "a.txt").write_text("new a")
            (stage / "b").mkdir()
            (stage / "b" / "x.txt").write_text("new b/x")
            (stage / "c.txt").write_text("new c")
        die()
    """, kill_at_replace=kill_at)
    new = {**before, "a.txt": "new a", "b/x.txt": "new b/x", "c.txt": "new c"}
    recover_folder(folder)
    after = _snapshot(folder)
    assert _hidden(folder) == []
    if kill_at <= 7:  # the commit's backup was still there: rolled back
        assert after == before
    else:
        assert after == new


def test_a_result_moved_aside_by_a_killed_replacement_is_put_back(tmp_path):
    """atomic_path replacing a directory: killed between moving the old one aside (rename 1) and renaming the
    new one in (2), the path is empty; the next write into the folder puts the old result back first."""
    store = tmp_path / "runs" / "store"
    store.mkdir(parents=True)
    (store / "data").write_text("old")
    _killed(f"""
        with atomic_path({str(store)!r}) as tmp:
            tmp.mkdir()
            (tmp / "data").write_text("new")
    """, kill_at_replace=2)
    assert not store.exists()
    assert recover_folder(store.parent) == [store]
    assert (store / "data").read_text() == "old" and _hidden(store.parent) == []


def test_staging_of_a_killed_set_is_removed_by_the_next_set(tmp_path):
    folder = tmp_path / "figs"
    folder.mkdir()
    (folder / "fig1.png").write_text("old")
    _killed(f"""
        with atomic_folder({str(folder)!r}) as stage:
            (stage / "fig1.png").write_text("half")
            die()
    """)
    assert len(_hidden(folder)) == 1 and (folder / "fig1.png").read_text() == "old"
    with atomic_folder(folder) as stage:
        (stage / "fig2.png").write_text("new")
    assert _snapshot(folder) == {"fig1.png": "old", "fig2.png": "new"}


def test_temporaries_of_live_processes_and_other_hosts_are_left_alone(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(dead.stdout)
    host = atomic._host()
    other = "0" * 8 if host != "0" * 8 else "1" * 8
    names = {
        f".a.txt.tmp-{os.getpid()}@{host}-0123abcd": True,  # this process: alive
        f".a.txt.tmp-{dead_pid}@{other}-0123abcd": True,  # another host: its processes are not ours to judge
        f".a.txt.tmp-{dead_pid}@{host}-0123abcd": False,  # dead, this host: removed
        "a.txt.tmp-1@{host}-0123abcd": True,  # not hidden: not a temporary of ours
    }
    for name in names:
        (tmp_path / name).write_text("x")
    assert recover_folder(tmp_path) == []
    assert {n: (tmp_path / n).exists() for n in names} == names


def test_nothing_is_recovered_off_posix(tmp_path, monkeypatch):
    """On Windows os.kill(pid, 0) would terminate the process it names: off POSIX no owner is probed, every one
    counts as alive, and nothing is touched."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    name = f".a.txt.tmp-{int(dead.stdout)}@{atomic._host()}-0123abcd"
    (tmp_path / name).write_text("x")
    probed = []
    monkeypatch.setattr(atomic.os, "kill", lambda *args: probed.append(args))
    monkeypatch.setattr(atomic, "_POSIX", False)
    assert recover_folder(tmp_path) == [] and (tmp_path / name).exists() and probed == []


def test_a_killed_commit_whose_staging_folder_was_removed_loses_nothing(tmp_path):
    """Killed at rename 5 (old a.txt and b/x.txt aside, new a.txt placed), then the staging folder deleted by
    hand: which targets the commit had filled can no longer be told, so recovery removes nothing, puts the old
    b/x.txt back where its path is empty, and keeps the backup that still holds the old a.txt."""
    folder = tmp_path / "out"
    _old_set(folder)
    _killed(f"""
        with atomic_folder({str(folder)!r}) as stage:
            (stage / "a.txt").write_text("new a")
            (stage / "b").mkdir()
            (stage / "b" / "x.txt").write_text("new b/x")
            (stage / "c.txt").write_text("new c")
    """, kill_at_replace=5)
    for name in _hidden(folder):
        if ".tmp-" in name:
            atomic._remove(folder / name)
    recover_folder(folder)
    assert (folder / "a.txt").read_text() == "new a" and (folder / "b" / "x.txt").read_text() == "old b/x"
    [backup] = [folder / h for h in _hidden(folder)]
    assert ".commit-" in backup.name and "old a" in [p.read_text() for p in backup.iterdir() if p.is_file()]
