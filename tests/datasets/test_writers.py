"""Staged output: results appear all at once, or not at all."""

import pytest

from odontoscan.datasets.writers import staged_output


def test_outputs_replace_old_ones_only_when_the_block_succeeds(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "findings.json").write_text("old")
    (out / "keep.txt").write_text("untouched")
    with staged_output(out) as stage:
        (stage / "findings.json").write_text("new")
        (stage / "overlays").mkdir()
        (stage / "overlays" / "a.png").write_bytes(b"png")
        assert not (out / "overlays").exists()  # nothing visible before the end
    assert (out / "findings.json").read_text() == "new"
    assert (out / "overlays" / "a.png").read_bytes() == b"png"
    assert (out / "keep.txt").read_text() == "untouched"
    assert [p.name for p in out.iterdir() if p.name.startswith(".tmp")] == []


def test_a_failure_leaves_the_folder_as_it_was(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "findings.json").write_text("old")
    with pytest.raises(RuntimeError):
        with staged_output(out) as stage:
            (stage / "findings.json").write_text("half")
            raise RuntimeError("interrupted")
    assert (out / "findings.json").read_text() == "old"
    assert sorted(p.name for p in out.iterdir()) == ["findings.json"]
