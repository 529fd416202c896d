"""Small real file systems a test can fill up or turn read-only under a running monitor.

- a **tmpfs** of a fixed size: filled with a file until writes fail with ENOSPC, freed by deleting it;
- an **ext4 image on a loop device**, mounted ``errors=remount-ro``: writing to the file system's
  ``trigger_fs_error`` in sysfs makes the kernel report an error and remount it read-only, as it does
  for a failing disk, with the monitor's files open. ``mount -o remount,ro`` cannot do that (the
  kernel refuses while files are open for writing), and ``chmod`` does not stop a root process, nor
  anyone from writing through a file already open.

Both need root (the test suite runs as root); without it the test fails and says so.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _run(*command: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed ({done.stderr.strip()}): these tests mount small file systems "
                    "and need root (CAP_SYS_ADMIN)", pytrace=False)


@contextlib.contextmanager
def tmpfs(directory: Path, size: str) -> Iterator[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    _run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory))
    try:
        yield directory
    finally:
        subprocess.run(["umount", "--lazy", str(directory)], capture_output=True, timeout=60)


def fill(path: Path) -> int:
    """Write ``path`` until the file system has no room left; returns the bytes written."""
    written = 0
    with path.open("wb", buffering=0) as filler:  # unbuffered: nothing left over to fail at close
        for size in (65536, 512):  # then the last partial chunk
            with contextlib.suppress(OSError):  # ENOSPC: full
                while True:
                    written += filler.write(b"\0" * size) or 0
    return written


@contextlib.contextmanager
def ext4_image(image: Path, directory: Path, size_mb: int = 16) -> Iterator[Path]:
    """An ext4 file system on a loop device, without a journal, mounted ``errors=remount-ro``."""
    with image.open("wb") as handle:
        handle.truncate(size_mb * 1024 * 1024)
    _run("mkfs.ext4", "-q", "-F", "-O", "^has_journal", str(image))
    directory.mkdir(parents=True, exist_ok=True)
    mount(image, directory)
    try:
        yield directory
    finally:
        unmount(directory)


def mount(image: Path, directory: Path) -> None:
    _run("mount", "-o", "loop,errors=remount-ro", str(image), str(directory))


def unmount(directory: Path) -> None:
    if os.path.ismount(directory):
        subprocess.run(["umount", str(directory)], capture_output=True, timeout=60)


def fail_read_only(directory: Path) -> None:
    """Make the kernel turn the ext4 file system at ``directory`` read-only, as after a disk error."""
    device = subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(directory)], capture_output=True, text=True,
                            check=True).stdout.strip()
    trigger = Path("/sys/fs/ext4") / Path(device).name / "trigger_fs_error"
    if not trigger.exists():
        pytest.fail(f"{trigger} is missing: the kernel's ext4 has no error trigger", pytrace=False)
    trigger.write_text("test: the disk failed\n")


def is_read_only(directory: Path) -> bool:
    """Whether creating a file there fails as on a read-only file system (the kernel's emergency
    read-only state does not show in statvfs's flags)."""
    try:
        (directory / ".probe").touch()
    except OSError as exc:
        return exc.errno == errno.EROFS
    (directory / ".probe").unlink()
    return False


def check_file_system(image: Path) -> None:
    """e2fsck, as after a real disk error, so the image mounts again without complaint."""
    subprocess.run(["e2fsck", "-f", "-y", str(image)], capture_output=True, timeout=120)
