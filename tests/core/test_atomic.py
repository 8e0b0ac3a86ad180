import os
import stat

import pytest

from core.atomic import atomic_write, atomic_write_json


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_json(target, {"x": 1})
    assert target.read_text().strip().startswith("{")
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")

    def boom(fh):
        fh.write(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_files_get_umask_permissions_not_0600(tmp_path):
    target = atomic_write_json(tmp_path / "r.json", {})
    mode = stat.S_IMODE(os.stat(target).st_mode)
    assert mode & stat.S_IRUSR
    mask = os.umask(0)
    os.umask(mask)
    assert mode == 0o666 & ~mask
