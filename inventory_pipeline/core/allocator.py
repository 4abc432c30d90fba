"""How this process gets memory for large arrays: set once, when the package is imported.

The stages work on columns of ~11 M rows at M5 scale (88 MB a float column), and make and drop
dozens of them per plan. Two defaults cost more in the kernel than in the stages' own code there
(measured on the M5 forecast asset: 12.8 s of system time in a 38 s process;
docs/results/2026-12-07-allocator.md):

- glibc `malloc` gives every block above its mmap threshold (at most 32 MB when it adapts) its own
  mapping and unmaps it on `free`: each new column faults its pages in again. A fixed threshold
  of 2 GiB keeps such blocks on the heap, where the next column of the same size reuses them.
- numpy asks the kernel for transparent huge pages on every array of 4 MB or more
  (`madvise(MADV_HUGEPAGE)`); with the kernel's default `defrag=madvise`, a page fault there
  waits for memory compaction.

Kept on the heap, the memory a stage freed stays resident until `release_free_memory` gives its
pages back: a long process that runs stage after stage (the twin's days) calls it between them.

Neither changes a result, only where bytes come from. A setting the environment already makes
(`MALLOC_MMAP_THRESHOLD_`, `NUMPY_MADVISE_HUGEPAGE`) is left as it is, and
`INVENTORY_PIPELINE_TUNE_ALLOCATOR=0` leaves both defaults alone. Off glibc (macOS, musl) the
allocator is not touched.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
MMAP_THRESHOLD_BYTES = 2**31 - 1  # mallopt takes an int: blocks past 2 GiB still get their own mapping


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)  # the symbols the process already has: its C library's among them
        libc.gnu_get_libc_version  # noqa: B018 - present on glibc only (not musl)
        return libc
    except (OSError, AttributeError):
        return None


def tune_allocator(environ: dict[str, str] | None = None) -> dict[str, bool]:
    """Apply the two settings (module docstring); returns which ones this call made."""
    env = os.environ if environ is None else environ
    made = {"malloc_mmap_threshold": False, "numpy_hugepages_off": False}
    if env.get("INVENTORY_PIPELINE_TUNE_ALLOCATOR", "1") == "0":
        return made
    if "MALLOC_MMAP_THRESHOLD_" not in env and (libc := _glibc()) is not None:
        made["malloc_mmap_threshold"] = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    if "NUMPY_MADVISE_HUGEPAGE" not in env:
        from numpy._core.multiarray import _set_madvise_hugepage  # numpy's own switch for this env var

        _set_madvise_hugepage(False)
        made["numpy_hugepages_off"] = True
    return made


def release_free_memory() -> bool:
    """Give the free pages of the heap back to the kernel (glibc's `malloc_trim`, which also
    releases whole free pages in the middle of the heap). True when some memory was released."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
