"""Build pyxai and its native extension ``pyxai._C``.

Decisions (printed during the build):

* ``PYXAI_NO_NATIVE=1``: pure-Python install, no extension.
* CPU kernels are always built (``csrc/**/cpu.cpp`` and every other ``.cpp`` but CUDA glue).
* CUDA kernels (``csrc/**/*.cu`` and ``csrc/**/cuda_glue.cpp``) are built when torch has CUDA and
  nvcc is found, or when ``FORCE_CUDA=1``; ``PYXAI_NO_CUDA=1`` (or ``FORCE_CUDA=0``) skips them.
  nvcc is located from ``CUDA_HOME``/``CUDA_PATH``, else by asking nvcc itself where it lives (a
  wrapper script on PATH fools torch's own guess), else the standard prefix ``/usr/local/cuda``.
* With no GPU visible and no ``TORCH_CUDA_ARCH_LIST``, CUDA code is built for ``8.0;9.0+PTX``.

New kernels need no edit here: the csrc/ folders are globbed.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent
CUDA_ONLY = ("cuda_glue.cpp",)


def log(msg: str) -> None:
    print(f"[pyxai setup] {msg}", file=sys.stderr, flush=True)


def _valid_cuda_home(path: str | None) -> bool:
    if not path:
        return False
    p = Path(path)
    has_nvcc = (p / "bin" / "nvcc").exists()
    has_header = (p / "include" / "cuda_runtime.h").exists() or bool(
        glob.glob(str(p / "targets" / "*" / "include" / "cuda_runtime.h"))
    )
    return has_nvcc and has_header


def find_cuda_home() -> tuple[str | None, str]:
    """Return (CUDA install prefix or None, how it was found)."""
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if _valid_cuda_home(os.environ.get(var)):
            return os.environ[var], f"${var}"
    nvcc = shutil.which("nvcc")
    if nvcc:
        # nvcc reports its real location in a dry run (works through wrapper scripts).
        try:
            out = subprocess.run(
                [nvcc, "--dryrun", "-c", "-x", "cu", os.devnull, "-o", os.devnull],
                capture_output=True, text=True, timeout=60,
            )
            m = re.search(r"_HERE_=(\S+)", out.stdout + out.stderr)
            if m:
                home = str(Path(m.group(1)).resolve().parent)
                if _valid_cuda_home(home):
                    return home, f"nvcc --dryrun ({nvcc})"
        except (OSError, subprocess.SubprocessError):
            pass
        home = str(Path(nvcc).resolve().parent.parent)
        if _valid_cuda_home(home):
            return home, f"nvcc on PATH ({nvcc})"
    for prefix in ["/usr/local/cuda", *sorted(glob.glob("/usr/local/cuda-*"), reverse=True)]:
        if _valid_cuda_home(prefix):
            return prefix, "standard prefix"
    return None, "nvcc not found (set CUDA_HOME)"


def native_extensions() -> tuple[list, dict]:
    if os.environ.get("PYXAI_NO_NATIVE", "0") == "1":
        log("PYXAI_NO_NATIVE=1: installing without native code (reference backend only)")
        return [], {}
    import torch
    from torch.utils import cpp_extension

    force = os.environ.get("FORCE_CUDA")
    no_cuda = os.environ.get("PYXAI_NO_CUDA", "0") == "1" or force == "0"
    cuda_home, how = find_cuda_home()
    if no_cuda:
        use_cuda, why = False, "disabled by PYXAI_NO_CUDA=1 / FORCE_CUDA=0"
    elif force == "1":
        use_cuda, why = True, "FORCE_CUDA=1"
    elif torch.version.cuda is None:
        use_cuda, why = False, "installed torch has no CUDA"
    elif cuda_home is None:
        use_cuda, why = False, how
    else:
        use_cuda, why = True, f"torch CUDA {torch.version.cuda}, nvcc at {cuda_home} via {how}"

    sources = sorted(glob.glob("csrc/**/*.cpp", recursive=True))
    cpu_sources = [s for s in sources if not s.endswith(CUDA_ONLY)]
    cuda_sources = [s for s in sources if s.endswith(CUDA_ONLY)]
    cuda_sources += sorted(glob.glob("csrc/**/*.cu", recursive=True))

    cxx = ["-O3"]  # the C++ standard is torch's choice (C++17 for torch 2.4, C++20 later)
    define_macros = []
    if sys.platform != "win32":
        cxx += ["-fopenmp"] if torch.backends.openmp.is_available() else []
    kwargs: dict = {"include_dirs": [str(ROOT / "csrc")]}
    if use_cuda:
        if cuda_home is None:
            raise RuntimeError("FORCE_CUDA=1 but nvcc was not found: set CUDA_HOME")
        os.environ["CUDA_HOME"] = cuda_home
        cpp_extension.CUDA_HOME = cuda_home  # torch caches its own (possibly wrong) guess
        if not os.environ.get("TORCH_CUDA_ARCH_LIST"):
            visible = torch.cuda.is_available()
            if not visible:
                os.environ["TORCH_CUDA_ARCH_LIST"] = "8.0;9.0+PTX"
        define_macros.append(("PYXAI_WITH_CUDA", None))
        nvcc_flags = ["-O3", "-lineinfo"]
        ext = cpp_extension.CUDAExtension(
            "pyxai._C",
            cpu_sources + cuda_sources,
            define_macros=define_macros,
            extra_compile_args={"cxx": cxx, "nvcc": nvcc_flags},
            **kwargs,
        )
        arch = os.environ.get("TORCH_CUDA_ARCH_LIST", "(detected from visible GPU)")
        log(f"building CPU + CUDA kernels: {why}; TORCH_CUDA_ARCH_LIST={arch}")
    else:
        ext = cpp_extension.CppExtension(
            "pyxai._C", cpu_sources, define_macros=define_macros,
            extra_compile_args={"cxx": cxx}, **kwargs,
        )
        log(f"building CPU kernels only: {why}")
    log(f"{len(ext.sources)} sources; torch {torch.__version__}")
    build_ext = cpp_extension.BuildExtension.with_options(use_ninja=True)
    return [ext], {"build_ext": build_ext}


ext_modules, cmdclass = native_extensions()
setup(ext_modules=ext_modules, cmdclass=cmdclass)
