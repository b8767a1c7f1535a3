"""One anatomy, many encodings: every one loads to the same canonical array and spacing.

This is the property that keeps a left molar from becoming a right one: orientation
(LPS, RAS, flipped, sagittal or coronal stacks), file order and file format must not
change what ``load_scan`` returns.
"""

import numpy as np
import pytest
from helpers.volumes import ORIENTATIONS, reference_volume, store, write_enhanced_ct, write_itk, write_series

from odontoscan.datasets import Modality, load_scan

SPACING = (0.3, 0.35, 0.5)
CANONICAL_ORIGIN = (10.0, -20.0, 30.0)


@pytest.fixture(scope="module")
def reference():
    return reference_volume()


def _check(scan, reference):
    assert scan.modality is Modality.CT
    assert scan.orientation == "RAS"
    assert scan.array.dtype == np.float32
    assert scan.shape == reference.shape
    assert scan.spacing == pytest.approx(SPACING)
    np.testing.assert_array_equal(scan.array, reference)
    assert scan.geometry.origin == pytest.approx(CANONICAL_ORIGIN, abs=1e-4)


@pytest.mark.parametrize("orientation", sorted(ORIENTATIONS))
def test_dicom_series_in_any_orientation_and_file_order(tmp_path, reference, orientation):
    axes, flips = ORIENTATIONS[orientation]
    stored = store(reference, SPACING, axes, flips, CANONICAL_ORIGIN)
    write_series(stored, tmp_path / "series", shuffle=7)
    scan = load_scan(tmp_path / "series")
    _check(scan, reference)
    assert scan.meta.source_format == "dicom-series"
    assert len(scan.meta.sop_instance_uids) == stored.array.shape[2]


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".mha", ".nrrd"])
@pytest.mark.parametrize("orientation", ["lps_axial", "ras", "coronal_stack"])
def test_itk_formats_in_any_orientation(tmp_path, reference, suffix, orientation):
    axes, flips = ORIENTATIONS[orientation]
    stored = store(reference, SPACING, axes, flips, CANONICAL_ORIGIN)
    _check(load_scan(write_itk(stored, tmp_path / f"scan{suffix}")), reference)


@pytest.mark.parametrize("orientation", ["lps_axial", "sagittal_stack"])
def test_enhanced_multiframe_ct_with_scrambled_frames(tmp_path, reference, orientation):
    axes, flips = ORIENTATIONS[orientation]
    stored = store(reference, SPACING, axes, flips, CANONICAL_ORIGIN)
    scan = load_scan(write_enhanced_ct(stored, tmp_path / "enhanced.dcm"))
    _check(scan, reference)
    assert scan.meta.source_format == "dicom-enhanced"


def test_source_orientation_is_reported(tmp_path, reference):
    stored = store(reference, SPACING, *ORIENTATIONS["sagittal_stack"], CANONICAL_ORIGIN)
    write_series(stored, tmp_path / "s")
    scan = load_scan(tmp_path / "s")
    assert scan.meta.source_orientation == scan.geometry.source_orientation
    assert len(scan.meta.source_orientation) == 3
    assert scan.meta.source_orientation != "RAS"
