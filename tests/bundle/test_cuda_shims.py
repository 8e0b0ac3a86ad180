"""packaging/cuda_shims.py on real ELF files: a 'CUDA' library that a kept library needs
is replaced by a shim that satisfies the loader and aborts loudly if called."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"
pytestmark = pytest.mark.skipif(
    not (sys.platform.startswith("linux") and shutil.which("cc") and shutil.which("readelf")),
    reason="Linux shims need cc and readelf",
)


@pytest.fixture
def cuda_shims(monkeypatch):
    monkeypatch.syspath_prepend(str(PACKAGING))
    import cuda_shims

    return cuda_shims


def _cc(out: Path, source: str, *flags: str) -> Path:
    src = out.with_suffix(".c")
    src.write_text(source)
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(out), str(src), *flags], check=True)
    return out


@pytest.fixture
def libs(tmp_path):
    """libbig.so under nvidia/ (versioned, like libnccl) and libuser.so that needs it."""
    big_dir = tmp_path / "site" / "nvidia" / "big" / "lib"
    big_dir.mkdir(parents=True)
    (tmp_path / "big.map").write_text("BIG_1 { global: big_add; big_table; big_unused; };\n")
    big = _cc(
        big_dir / "libbig.so",
        "int big_table[4] = {7, 7, 7, 7};\n"
        "int big_add(int a, int b) { return a + b; }\n"
        "int big_unused(void) { return 1; }\n",
        "-Wl,-soname,libbig.so",
        f"-Wl,--version-script,{tmp_path / 'big.map'}",
    )
    user = _cc(
        tmp_path / "site" / "libuser.so",
        "extern int big_table[4];\nextern int big_add(int, int);\n"
        "int user_reads(void) { return big_table[0]; }\n"
        "int user_adds(int a) { return big_add(a, 1); }\n",
        f"-L{big_dir}",
        "-lbig",
        "-Wl,-rpath,$ORIGIN",
    )
    return big, user


def test_shim_replaces_needed_cuda_library(cuda_shims, libs, tmp_path):
    big, user = libs
    toc = [("nvidia/big/lib/libbig.so", str(big), "BINARY"), ("libuser.so", str(user), "BINARY")]
    out = cuda_shims.cpu_only(toc, tmp_path / "shims", log=lambda _msg: None)

    dests = {dest: src for dest, src, _ in out}
    assert dests["libuser.so"] == str(user)
    shim = Path(dests["nvidia/big/lib/libbig.so"])
    assert shim != big and shim.stat().st_size < 100_000
    defined, _ = cuda_shims.dynamic_symbols(str(shim))
    # exactly what the kept library takes from it, in the same version node
    assert {"big_add", "big_table"} <= defined.keys()
    assert "big_unused" not in defined
    assert defined["big_add"].version == "BIG_1"
    assert defined["big_table"].kind == "OBJECT" and defined["big_table"].size == 16

    # the loader accepts the kept library with the shim in the real one's place
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    shutil.copy(user, bundle / "libuser.so")
    shutil.copy(shim, bundle / "libbig.so")
    probe = (
        "import ctypes, sys; lib = ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_LOCAL); "
        "print(lib.user_reads()); sys.stdout.flush(); lib.user_adds(1)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(bundle / "libuser.so")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == "0"  # the shim's zeroed table, not the real 7
    # and a call into the left-out library aborts, naming it
    assert result.returncode != 0
    assert "big_add is in libbig.so, a CUDA library this bundle leaves out" in result.stderr


def test_unneeded_cuda_library_is_dropped_without_shim(cuda_shims, libs, tmp_path):
    big, _user = libs
    toc = [("nvidia/big/lib/libbig.so", str(big), "BINARY")]
    assert cuda_shims.cpu_only(toc, tmp_path / "shims", log=lambda _msg: None) == []


def test_small_cuda_runtime_pieces_are_kept(cuda_shims):
    assert not cuda_shims.is_cuda("nvidia/cu13/lib/libcudart.so.13")
    assert not cuda_shims.is_cuda("torch/lib/libc10_cuda.so")
    assert cuda_shims.is_cuda("nvidia/cu13/lib/libcublasLt.so.13")
    assert not cuda_shims.is_cuda("torch/lib/libtorch_cuda.so")  # runs at torch's import
    assert cuda_shims.is_cuda("torch/lib/libtorch_cuda_linalg.so")
    assert cuda_shims.is_cuda("nvidia/nccl/lib/libnccl.so.2")
    assert cuda_shims.is_cuda("triton/backends/nvidia/lib/libcupti.so")
    assert not cuda_shims.is_cuda("torch/lib/libtorch_cpu.so")


def test_unshimmed_library_really_fails_to_load(libs, tmp_path):
    # why the shims exist: without libbig.so the loader refuses libuser.so outright
    _big, user = libs
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(user, alone / "libuser.so")
    with pytest.raises(OSError, match=r"libbig\.so"):
        ctypes.CDLL(str(alone / "libuser.so"))


def test_symbol_from_a_library_the_dropped_one_loads_goes_into_its_shim(cuda_shims, tmp_path):
    # libtorch_python takes libtorch_nvshmem's symbols through libtorch_cuda's NEEDED
    lib = tmp_path / "nvidia" / "lib"
    lib.mkdir(parents=True)
    deep = _cc(lib / "libdeep.so", "int deep_fn(void) { return 3; }\n", "-Wl,-soname,libdeep.so")
    mid = _cc(
        lib / "libmid.so",
        "int mid_fn(void) { return 2; }\n",
        "-Wl,-soname,libmid.so",
        f"-L{lib}",
        "-Wl,--no-as-needed",
        "-ldeep",
    )
    user = _cc(
        tmp_path / "libuser.so",
        "extern int mid_fn(void);\nextern int deep_fn(void);\n"
        "int user_fn(void) { return mid_fn() + deep_fn(); }\n",
        f"-L{lib}",
        "-lmid",
    )
    toc = [
        ("nvidia/lib/libdeep.so", str(deep), "BINARY"),
        ("nvidia/lib/libmid.so", str(mid), "BINARY"),
        ("libuser.so", str(user), "BINARY"),
    ]
    out = cuda_shims.cpu_only(toc, tmp_path / "shims", log=lambda _msg: None)
    assert [dest for dest, _, _ in out] == ["libuser.so", "nvidia/lib/libmid.so"]
    defined, _ = cuda_shims.dynamic_symbols(out[1][1])
    assert {"mid_fn", "deep_fn"} <= defined.keys()
