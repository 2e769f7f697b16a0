"""Report files on disk: private directories and files, and their checksums.

Reports carry names, NIPs and results, so nothing here relies on the umask: directories are 0700 and files
are created 0600 before a byte is written (never chmod-ed afterwards, which would leave a window).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import IO


def private_dir(path: Path) -> Path:
    """A directory only the pipeline's user may enter, whatever the umask says."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def private_file(path: Path, mode: str = "wb") -> IO[bytes]:
    """Open ``path`` for writing, created (or truncated) with mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its old mode under O_CREAT
    return os.fdopen(fd, mode)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
