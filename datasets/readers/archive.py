"""Safe extraction of zip archives of scans.

A zip from outside is untrusted: it may hold paths that climb out of the target
folder ("../../etc/passwd", absolute paths, symlinks) or decompress to far more than
its own size. Both are refused before anything is written, and the byte count is
enforced again while streaming, so a lying header cannot get past the limit.
"""

from __future__ import annotations

import os
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from odontoscan.datasets.errors import ArchiveError, ArchiveTooLargeError, ScanReadError

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ArchiveLimits:
    """Upper bounds for one archive. Defaults fit a large CBCT study (about 2 GB).

    Override per call, or through ``ODONTOSCAN_MAX_ARCHIVE_BYTES`` and
    ``ODONTOSCAN_MAX_ARCHIVE_FILES`` (read by :meth:`from_env`).
    """

    max_bytes: int = 4 * 1024**3
    max_files: int = 20_000

    @classmethod
    def from_env(cls) -> ArchiveLimits:
        default = cls()
        try:
            return cls(
                max_bytes=int(os.environ.get("ODONTOSCAN_MAX_ARCHIVE_BYTES", default.max_bytes)),
                max_files=int(os.environ.get("ODONTOSCAN_MAX_ARCHIVE_FILES", default.max_files)),
            )
        except ValueError as exc:
            raise ScanReadError(
                "ODONTOSCAN_MAX_ARCHIVE_BYTES / ODONTOSCAN_MAX_ARCHIVE_FILES must be whole numbers"
            ) from exc


def _safe_member_path(name: str) -> PurePosixPath:
    """The member's relative path, or an ArchiveError if it would leave the folder."""
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or (pure.parts and pure.parts[0].endswith(":")) or ".." in pure.parts:
        raise ArchiveError(
            "The zip archive contains a path that points outside its own folder "
            "(absolute or with '..'); refusing to extract it. Re-create the archive "
            "with relative paths only."
        )
    return pure


def extract_zip(archive: Path, target: Path, limits: ArchiveLimits | None = None) -> Path:
    """Extract ``archive`` into the existing folder ``target`` after checking it is safe.

    Raises:
        ArchiveError: the file is not a valid zip, or a member path is unsafe.
        ArchiveTooLargeError: more files or bytes than ``limits`` allow.
    """
    limits = limits or ArchiveLimits.from_env()
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveError(
            f"'{archive.name}' is not a readable zip archive ({type(exc).__name__}); "
            "check that the upload or copy completed."
        ) from exc
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if len(members) > limits.max_files:
            raise ArchiveTooLargeError(
                f"The zip archive holds {len(members)} files, more than the limit of "
                f"{limits.max_files}; split it or raise ODONTOSCAN_MAX_ARCHIVE_FILES."
            )
        declared = sum(m.file_size for m in members)
        if declared > limits.max_bytes:
            raise ArchiveTooLargeError(
                f"The zip archive would expand to {declared / 1e6:.0f} MB, more than the "
                f"limit of {limits.max_bytes / 1e6:.0f} MB; split it or raise "
                "ODONTOSCAN_MAX_ARCHIVE_BYTES."
            )
        paths = []
        for m in members:
            if stat.S_ISLNK(m.external_attr >> 16):
                raise ArchiveError(
                    "The zip archive contains a symbolic link; refusing to extract it. "
                    "Re-create the archive without links."
                )
            paths.append((m, _safe_member_path(m.filename)))

        written = 0
        root = target.resolve()
        for member, rel in paths:
            dest = root.joinpath(*rel.parts)
            if root not in dest.resolve().parents:
                raise ArchiveError("The zip archive contains a path outside its folder.")
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(member) as src, open(dest, "wb") as out:
                    while chunk := src.read(_CHUNK):
                        written += len(chunk)
                        if written > limits.max_bytes:
                            raise ArchiveTooLargeError(
                                "The zip archive expands to more than the limit of "
                                f"{limits.max_bytes / 1e6:.0f} MB (its header understated "
                                "the size); refusing it."
                            )
                        out.write(chunk)
            except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError) as exc:
                raise ArchiveError(
                    f"The zip archive is damaged ({type(exc).__name__} while reading a "
                    "member); check that the upload or copy completed."
                ) from exc
    return target
