"""Zip archives: unsafe paths and oversized content are refused before anything is written."""

import io
import zipfile

import pytest

from odontoscan.datasets import load_scan
from odontoscan.datasets.errors import ArchiveError, ArchiveTooLargeError
from odontoscan.datasets.readers.archive import ArchiveLimits, extract_zip


def _zip(path, members):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.mark.parametrize("name", ["../evil.txt", "a/../../evil.txt", "/abs/evil.txt", "..\\evil.txt"])
def test_paths_leaving_the_folder_are_refused_and_nothing_is_written(tmp_path, name):
    archive = _zip(tmp_path / "bad.zip", {"ok.txt": b"fine", name: b"evil"})
    target = tmp_path / "out" / "inner"
    target.mkdir(parents=True)
    with pytest.raises(ArchiveError, match="outside its own folder"):
        extract_zip(archive, target)
    assert not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "out" / "evil.txt").exists()
    assert list(target.iterdir()) == []


def test_symlink_members_are_refused(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(ArchiveError, match="symbolic link"):
        extract_zip(archive, tmp_path)


def test_too_many_bytes(tmp_path):
    archive = _zip(tmp_path / "big.zip", {"zeros.bin": b"\0" * 200_000})
    with pytest.raises(ArchiveTooLargeError, match=r"expand to 0 MB, more than the limit.*ODONTOSCAN_MAX_ARCHIVE_BYTES"):
        load_scan(archive, archive_limits=ArchiveLimits(max_bytes=100_000))


def test_too_many_files(tmp_path):
    archive = _zip(tmp_path / "many.zip", {f"f{i}.txt": b"x" for i in range(11)})
    with pytest.raises(ArchiveTooLargeError, match="holds 11 files, more than the limit of 10"):
        load_scan(archive, archive_limits=ArchiveLimits(max_files=10))


def test_limits_from_environment(monkeypatch):
    monkeypatch.setenv("ODONTOSCAN_MAX_ARCHIVE_BYTES", "1234")
    monkeypatch.setenv("ODONTOSCAN_MAX_ARCHIVE_FILES", "5")
    assert ArchiveLimits.from_env() == ArchiveLimits(max_bytes=1234, max_files=5)


def test_not_a_zip(tmp_path):
    fake = tmp_path / "study.zip"
    fake.write_bytes(b"this is not a zip file at all")
    with pytest.raises(ArchiveError, match="not a readable zip archive"):
        load_scan(fake)


def test_understated_sizes_are_caught_while_streaming(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("data.bin", b"\1" * 5000)
    raw = bytearray(buffer.getvalue())
    # Patch the central directory's uncompressed size (offset 24 in the entry) to 10 bytes.
    cd = raw.rfind(b"PK\x01\x02")
    raw[cd + 24 : cd + 28] = (10).to_bytes(4, "little")
    archive = tmp_path / "liar.zip"
    archive.write_bytes(bytes(raw))
    target = tmp_path / "x"
    target.mkdir()
    with pytest.raises(ArchiveError):
        extract_zip(archive, target, ArchiveLimits(max_bytes=1000))
