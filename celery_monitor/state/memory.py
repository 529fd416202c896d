"""Giving memory freed after a burst back to the operating system.

A burst passes through the hand-off as hundreds of MB of raw messages and decoded events. Python
frees them, but glibc's allocator keeps the freed blocks in its arenas, so the process stays that
large until the next burst. ``malloc_trim`` returns the free pages; elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Callable


def _find_malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim  # glibc only: musl has no such function
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_malloc_trim = _find_malloc_trim()


def release_free_memory() -> bool:
    """Return free heap pages to the OS; True when the allocator supports it (ctypes drops the GIL)."""
    if _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True
