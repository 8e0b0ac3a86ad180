"""Leave the big CUDA libraries out of a Linux bundle built from the registry's CUDA torch.

torch from the package registry is one build for CPU and GPU: libtorch_cuda.so (500 MB)
needs cuBLAS, cuFFT, cuSPARSE, NCCL, NVRTC and friends (about 3 GB). The dynamic loader
refuses to load torch if any NEEDED file is missing or leaves a symbol unresolved, even
when that symbol is never called on a CPU.

So the CPU bundle keeps libtorch_cuda.so itself and the small CUDA runtime pieces (cudart
answers "no device" when there is no driver, which is how torch.cuda.is_available() says
False) and replaces each big library a kept file needs by a shim: a small .so with the
same SONAME that defines exactly the symbols the kept files take from it. Every shim
function prints which CUDA library it stands for and aborts, so a CUDA call in a CPU
bundle fails loudly instead of silently computing nothing. Everything else CUDA (what
only the dropped libraries needed, triton) is simply left out.

Why libtorch_cuda.so stays: libtorch_python.so runs some of its code while it loads
(c10d's Python bindings build a ProcessGroupNCCL::Options default argument at import),
which no shim can stand in for. Shimming it too (tried) gets torch past the loader but
crashes at import.

Used by bpd_studio.spec (CPU variant, Linux only); needs readelf and a C compiler.
A torch that is already a CPU build (no libtorch_cuda.so) passes through unchanged.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

# The CUDA pieces torch runs while it loads or asks for a device: libtorch_cuda (see
# above) and small runtime libraries (about 15 MB); kept as they are.
KEEP = re.compile(
    r"lib(cudart|cupti|cufile|cudnn)\.so\.\d+$|lib(c10_cuda|torch_cuda|torch_nvshmem)\.so$"
)
# CUDA-only binaries: anything from the nvidia-* wheels, torch's CUDA libraries, triton.
CUDA = re.compile(
    r"(^|/)nvidia/|(^|/)triton/|libtorch_cuda[\w.]*\.so|libtorch_nvshmem\.so"
    r"|libcaffe2_nvrtc\.so|(^|/)lib(nvshmem|cublas|cudnn|cufft|curand|cusolver|cusparse"
    r"|nccl|nvrtc|nvJitLink|nvToolsExt|cusparseLt)[\w.-]*\.so"
)
ELF_MAGIC = b"\x7fELF"


@dataclass(frozen=True)
class Symbol:
    name: str
    kind: str  # FUNC, OBJECT, TLS, IFUNC, NOTYPE
    size: int
    version: str | None  # the version node it is defined in (libnccl uses them)


def is_cuda(dest: str) -> bool:
    return bool(CUDA.search(dest)) and not KEEP.search(dest)


def _readelf(*args: str) -> str:
    return subprocess.run(
        ["readelf", "-W", *args], check=True, capture_output=True, text=True
    ).stdout


def needed(path: str) -> set[str]:
    return set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", _readelf("-d", path)))


def soname(path: str) -> str:
    found = re.search(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", _readelf("-d", path))
    return found.group(1) if found else Path(path).name


def dynamic_symbols(path: str) -> tuple[dict[str, Symbol], set[str]]:
    """(defined global symbols by name, names of strongly undefined ones) from .dynsym.
    A weak undefined symbol is left out: it resolves to NULL when nothing defines it,
    which is how CPU code tests for optional CUDA hooks, so a shim must not define it."""
    defined: dict[str, Symbol] = {}
    undefined: set[str] = set()
    for line in _readelf("--dyn-syms", path).splitlines():
        cols = line.split()
        if len(cols) < 8 or not cols[0][:-1].isdigit() or cols[4] == "LOCAL":
            continue
        name, _, version = cols[7].partition("@")
        if cols[6] == "UND":
            if cols[4] != "WEAK":
                undefined.add(name)
            continue
        size = int(cols[2], 0) if cols[2].startswith("0x") else int(cols[2])
        node = version.lstrip("@") or None
        defined[name] = Symbol(name, cols[3], size, node)
    return defined, undefined


def _is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == ELF_MAGIC
    except OSError:
        return False


def shim_source(lib: str, symbols: list[Symbol]) -> str:
    """C for a library that defines `symbols`: functions abort with the library's name,
    data is zeroed (a CPU never reads it)."""
    lines = [
        "#include <stdio.h>",
        "#include <stdlib.h>",
        "static void missing(const char *symbol) {",
        '  fprintf(stderr, "BPD Studio CPU bundle: %s is in ' + lib + ", a CUDA library "
        'this bundle leaves out (use the GPU bundle, docs/packaging.md)\\n", symbol);',
        "  abort();",
        "}",
    ]
    for i, sym in enumerate(symbols):
        label = f'__asm__("{sym.name}")'
        size = max(sym.size, 1)
        if sym.kind == "OBJECT":
            lines.append(f"char d{i}[{size}] {label} __attribute__((aligned(16)));")
        elif sym.kind == "TLS":
            lines.append(f"__thread char t{i}[{size}] {label} __attribute__((aligned(16)));")
        else:  # FUNC, IFUNC, NOTYPE: something called
            lines.append(f"void f{i}(void) {label};")
            lines.append(f'void f{i}(void) {{ missing("{sym.name}"); }}')
    return "\n".join(lines) + "\n"


def version_script(symbols: list[Symbol]) -> str | None:
    nodes: dict[str, list[str]] = {}
    for sym in symbols:
        if sym.version:
            nodes.setdefault(sym.version, []).append(sym.name)
    if not nodes:
        return None
    return "".join(f"{node} {{ global: {'; '.join(names)}; }};\n" for node, names in nodes.items())


def build_shim(lib_path: str, symbols: list[Symbol], out_dir: Path) -> Path:
    name = soname(lib_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    source = out_dir / f"{name}.c"
    source.write_text(shim_source(name, symbols), encoding="utf-8")
    target = out_dir / name
    cmd = ["cc", "-shared", "-fPIC", "-O1", "-o", str(target), str(source), f"-Wl,-soname,{name}"]
    script = version_script(symbols)
    if script:
        vs = out_dir / f"{name}.map"
        vs.write_text(script, encoding="utf-8")
        cmd.append(f"-Wl,--version-script,{vs}")
    subprocess.run(cmd, check=True)
    return target


def _closure(name: str, deps: dict[str, set[str]]) -> list[str]:
    """`name` and every library it loads through NEEDED, among `deps`, nearest first."""
    order, todo = [], [name]
    while todo:
        lib = todo.pop(0)
        if lib in deps and lib not in order:
            order.append(lib)
            todo.extend(sorted(deps[lib]))
    return order


def cpu_only(binaries: list[tuple], out_dir: Path, log=print) -> list[tuple]:
    """PyInstaller's binaries TOC without the CUDA libraries, with shims where needed."""
    dropped = [entry for entry in binaries if is_cuda(entry[0])]
    kept = [entry for entry in binaries if not is_cuda(entry[0])]
    wanted: set[str] = set()  # sonames the kept files list as NEEDED
    kept_defined: set[str] = set()
    kept_undefined: set[str] = set()
    for _, src, _ in kept:
        if _is_elf(src):
            wanted |= needed(src)
            defined, undefined = dynamic_symbols(src)
            kept_defined |= defined.keys()
            kept_undefined |= undefined
    # only what nothing kept defines: a shim must never shadow a real definition
    missing = kept_undefined - kept_defined
    by_soname = {soname(src): (dest, src, tc) for dest, src, tc in dropped if _is_elf(src)}
    deps = {name: needed(entry[1]) for name, entry in by_soname.items()}
    symbols = {name: dynamic_symbols(entry[1])[0] for name, entry in by_soname.items()}
    shims = []
    for name in sorted(wanted & by_soname.keys()):
        # a kept file may take a symbol from a library that the dropped one loads in turn
        # (libtorch_python uses libtorch_nvshmem's through libtorch_cuda): the shim that
        # stands for the NEEDED library defines those too
        chosen: dict[str, Symbol] = {}
        for lib in _closure(name, deps):
            for sym in sorted(missing & symbols[lib].keys()):
                chosen.setdefault(sym, symbols[lib][sym])
        missing -= chosen.keys()
        dest, src, typecode = by_soname[name]
        shim = build_shim(src, list(chosen.values()), out_dir)
        log(f"cuda_shims: {dest} -> shim with {len(chosen)} symbols")
        shims.append((dest, str(shim), typecode))
    size = sum(Path(src).stat().st_size for _, src, _ in dropped if Path(src).is_file())
    log(f"cuda_shims: left out {len(dropped)} CUDA files, {size / 2**30:.2f} GiB")
    return kept + shims
