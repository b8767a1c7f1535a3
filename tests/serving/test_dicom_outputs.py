"""DICOM SEG and SR outputs: frames on the right source slices, codes, values, errors."""

from __future__ import annotations

import importlib.util
import logging
import shutil
import sys
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from helpers.volumes import ORIENTATIONS, PHI, PHI_STRINGS, reference_volume, store, write_enhanced_ct, write_itk, write_series
from pydicom.sr.codedict import codes

from odontoscan.datasets import load_scan
from odontoscan.datasets.errors import ConfigError, DimensionError, OutputError, ScanReadError, SeriesNotFoundError, UnsupportedFormatError
from odontoscan.datasets.findings_schema import Finding, Findings, Measurement, ModelInfo, ScanInfo, Tooth
from odontoscan.datasets.labels import FDI_TEETH, label_names
from odontoscan.datasets.writers import write_radiograph_dicom
from odontoscan.serving.outputs import dicom as out

SHAPE = (24, 20, 16)  # canonical x, y, z
SPACING = (0.5, 0.6, 0.7)
MODEL = ModelInfo(name="cbct-test", version="7", sha256="0" * 64)


def _labels() -> np.ndarray:
    """Canonical label map, asymmetric on every axis so any flip or swap shows."""
    labels = np.zeros(SHAPE, np.uint16)
    labels[2:8, 3:9, 4:10] = 11
    labels[10:20, 5:15, 1:3] = 1
    labels[15:18, 2:4, 12:14] = 200
    labels[22, 18, 15] = 36  # a single voxel in a corner
    return labels


def _series(tmp_path: Path, orientation: str, enhanced: bool = False) -> Path:
    axes, flips = ORIENTATIONS[orientation]
    stored = store(reference_volume(SHAPE), SPACING, axes, flips)
    folder = tmp_path / "ct"
    if enhanced:  # one multi-frame file, frames in scrambled order
        folder.mkdir()
        write_enhanced_ct(stored, folder / "enhanced.dcm", PHI)
    else:  # file names and InstanceNumbers scrambled
        write_series(stored, folder, PHI, shuffle=7)
    return folder


def _findings(items: list[Finding]) -> Findings:
    return Findings(
        scan=ScanInfo(modality="CT", shape=list(SHAPE), spacing_mm=list(SPACING)),
        model=MODEL,
        teeth=[Tooth(fdi=t, status="present", confidence=0.9) for t in FDI_TEETH],
        findings=items,
    )


FINDINGS = [
    Finding(
        id="caries-16-1", kind="caries", fdi=16, confidence=0.8, severity="moderate",
        measurements={
            "volume_mm3": Measurement(value=12.5, unit="mm3"),
            "distance_to_pulp_mm": Measurement(value=0.8, unit="mm"),
        },
    ),
    Finding(
        id="impacted-38-1", kind="impacted_tooth", fdi=38, confidence=0.7, severity="info",
        measurements={"angle_deg": Measurement(value=32.0, unit="deg")},
    ),
    Finding(id="lesion-na-1", kind="periapical_lesion", confidence=0.6, severity="high"),
]


def _expected_mask(scan, labels: np.ndarray, position, orientation, pixel_spacing, rows: int, cols: int, label: int) -> np.ndarray:
    """Which pixels of a source slice hold ``label``, found through patient coordinates.

    Independent of the writer's array juggling: each pixel centre is placed in LPS mm
    from the slice's own position and orientation, then looked up in the canonical map.
    """
    row_dir, col_dir = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    lps = (
        np.asarray(position, float)
        + c[..., None] * float(pixel_spacing[1]) * row_dir
        + r[..., None] * float(pixel_spacing[0]) * col_dir
    )
    geometry = scan.geometry
    index = (lps - np.asarray(geometry.origin)) @ geometry.direction / np.asarray(scan.spacing)
    index = np.rint(index).astype(int)
    return labels[index[..., 0], index[..., 1], index[..., 2]] == label


def _source_planes(headers: list[pydicom.Dataset]) -> dict[tuple[str, int | None], tuple]:
    """(SOP instance UID, frame number or None) -> (position, orientation, spacing) of each source plane."""
    planes = {}
    for h in headers:
        if "PerFrameFunctionalGroupsSequence" in h:
            shared = h.SharedFunctionalGroupsSequence[0]
            orientation = shared.PlaneOrientationSequence[0].ImageOrientationPatient
            spacing = shared.PixelMeasuresSequence[0].PixelSpacing
            for n, item in enumerate(h.PerFrameFunctionalGroupsSequence, start=1):
                position = item.PlanePositionSequence[0].ImagePositionPatient
                planes[(h.SOPInstanceUID, n)] = (position, orientation, spacing)
        else:
            planes[(h.SOPInstanceUID, None)] = (h.ImagePositionPatient, h.ImageOrientationPatient, h.PixelSpacing)
    return planes


@pytest.mark.parametrize(
    ("orientation", "enhanced"),
    [("coronal_stack", False), ("lpi_axial_reversed", False), ("sagittal_stack", True)],
)
def test_seg_frames_lie_on_the_source_slices_they_reference(tmp_path, orientation, enhanced):
    folder = _series(tmp_path, orientation, enhanced)
    scan = load_scan(folder)
    labels = _labels()
    headers = out.read_source_headers(folder, scan.meta.series_instance_uid)
    path = out.write_seg(scan, labels, label_names(), headers, tmp_path / "out" / "seg.dcm", model=MODEL)

    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == pydicom.uid.SegmentationStorage
    assert ds.SegmentationType == "BINARY"
    assert ds.StudyInstanceUID == headers[0].StudyInstanceUID
    assert ds.FrameOfReferenceUID == headers[0].FrameOfReferenceUID
    assert [s.SeriesInstanceUID for s in ds.ReferencedSeriesSequence] == [scan.meta.series_instance_uid]
    numbers = {int(s.SegmentNumber): s.SegmentLabel for s in ds.SegmentSequence}
    assert numbers == {1: "Lower Jawbone", 2: "Upper Right Central Incisor", 3: "Lower Left First Molar", 4: "Caries"}
    label_of = {1: 1, 2: 11, 3: 36, 4: 200}

    pixels = ds.pixel_array.reshape(int(ds.NumberOfFrames), int(ds.Rows), int(ds.Columns))
    planes = _source_planes(headers)
    found = {}
    for item, frame in zip(ds.PerFrameFunctionalGroupsSequence, pixels):
        source = item.DerivationImageSequence[0].SourceImageSequence[0]
        key = (source.ReferencedSOPInstanceUID, int(source.ReferencedFrameNumber) if enhanced else None)
        segment = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        assert frame.any(), "empty frames must be left out"
        position = planes[key][0]
        np.testing.assert_allclose(
            [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient],
            [float(v) for v in position], atol=1e-3,
        )
        found[(key, segment)] = frame.astype(bool)

    rows, cols = int(headers[0].Rows), int(headers[0].Columns)
    for key, (position, orientation_, spacing) in planes.items():
        for segment, label in label_of.items():
            expected = _expected_mask(scan, labels, position, orientation_, spacing, rows, cols, label)
            got = found.get((key, segment), np.zeros((rows, cols), bool))
            assert np.array_equal(got, expected), f"segment {segment} wrong on source plane {key}"
    assert len(found) == int(ds.NumberOfFrames)

    seg = hd.seg.segread(path)
    assert seg.number_of_segments == 4
    tooth = seg.get_segment_description(2)
    assert tooth.segmented_property_type == codes.SCT.PermanentMaxillaryRightCentralIncisorTooth
    assert seg.get_segment_description(4).segmented_property_type.value == "80967001"  # dental caries
    assert tooth.algorithm_identification[0].AlgorithmName == "cbct-test"
    assert tooth.algorithm_identification[0].AlgorithmVersion == "7"
    if enhanced:  # the helper's Enhanced CT lacks Patient Sex: filled in the output, not in the caller's header
        assert ds.PatientSex == "" and "PatientSex" not in headers[0]


def test_seg_pixels_read_back_by_source_instance_with_highdicom(tmp_path):
    folder = _series(tmp_path, "coronal_stack")
    scan = load_scan(folder)
    labels = _labels()
    headers = out.read_source_headers(folder, scan.meta.series_instance_uid)
    path = out.write_seg(scan, labels, label_names(), headers, tmp_path / "seg.dcm")

    seg = hd.seg.segread(path)
    uids = [h.SOPInstanceUID for h in headers]
    masks = seg.get_pixels_by_source_instance(uids, segment_numbers=[2])[..., 0]
    for h, mask in zip(headers, masks):
        expected = _expected_mask(
            scan, labels, h.ImagePositionPatient, h.ImageOrientationPatient, h.PixelSpacing,
            int(h.Rows), int(h.Columns), 11,
        )
        assert np.array_equal(mask.astype(bool), expected)
    assert masks.any()


def test_sr_holds_one_measurement_group_per_finding(tmp_path):
    folder = _series(tmp_path, "lps_axial")
    scan = load_scan(folder)
    headers = out.read_source_headers(folder, scan.meta.series_instance_uid)
    seg_path = out.write_seg(scan, _labels(), label_names(), headers, tmp_path / "seg.dcm")
    path = out.write_sr(_findings(FINDINGS), headers, tmp_path / "sr.dcm", seg_path=seg_path)

    sr = hd.sr.srread(path)
    assert isinstance(sr, hd.sr.Comprehensive3DSR)
    assert sr.StudyInstanceUID == headers[0].StudyInstanceUID
    groups = {g.tracking_identifier: g for g in sr.content.get_image_measurement_groups()}
    assert set(groups) == {"caries-16-1", "impacted-38-1", "lesion-na-1"}

    caries = groups["caries-16-1"]
    assert caries.finding_type.value == "80967001"
    assert [s.value for s in caries.finding_sites] == [codes.SCT.PermanentMaxillaryRightFirstMolarTooth]
    values = {m.name.meaning: (m.value, m.unit.value) for m in caries.get_measurements()}
    assert values == {"Volume": (12.5, "mm3"), "Distance to pulp": (0.8, "mm")}
    assert [(e.name, e.value) for e in caries.get_qualitative_evaluations()] == [(codes.SCT.Severity, codes.SCT.Moderate)]

    impacted = groups["impacted-38-1"]
    assert impacted.finding_type == hd.sr.CodedConcept("impacted_tooth", out.LOCAL_SCHEME, "Impacted tooth")
    assert [s.value for s in impacted.finding_sites] == [codes.SCT.MandibularLeftThirdMolarTooth]
    assert [(m.name, m.value, m.unit.value) for m in impacted.get_measurements()] == [(codes.SCT.Angle, 32.0, "deg")]
    assert impacted.get_qualitative_evaluations() == []  # "info" carries no severity

    lesion = groups["lesion-na-1"]
    assert lesion.finding_sites == []
    assert lesion.get_qualitative_evaluations()[0].value == codes.SCT.Severe

    observer = sr.content.get_observer_contexts(observer_type=codes.DCM.Device)[0]
    assert observer.observer_identifying_attributes.name == "odontoscan"
    evidence = sr.get_evidence()
    series = {e[1] for e in evidence}
    assert series == {scan.meta.series_instance_uid, pydicom.dcmread(seg_path).SeriesInstanceUID}
    assert {e[0] for e in evidence} == {headers[0].StudyInstanceUID}
    assert {e[2] for e in evidence} >= set(scan.meta.sop_instance_uids)


def test_sr_without_findings_says_so(tmp_path):
    folder = _series(tmp_path, "lps_axial")
    scan = load_scan(folder)
    headers = out.read_source_headers(folder, scan.meta.series_instance_uid)
    path = out.write_sr(_findings([]), headers, tmp_path / "sr.dcm")

    groups = hd.sr.srread(path).content.get_image_measurement_groups()
    assert [g.tracking_identifier for g in groups] == ["no-findings"]
    evaluation = groups[0].get_qualitative_evaluations()[0]
    assert (evaluation.name, evaluation.value) == (codes.DCM.PresenceOfProperty, codes.DCM.Absent)


def test_sr_for_a_dicom_radiograph_and_seg_refuses_it(tmp_path):
    image = np.random.default_rng(0).integers(0, 4000, (30, 40))
    source = write_radiograph_dicom(image, tmp_path / "px.dcm", pixel_spacing=(0.1, 0.1), identity=PHI)
    scan = load_scan(source)
    headers = out.read_source_headers(source, scan.meta.series_instance_uid)
    assert [h.SOPInstanceUID for h in headers] == list(scan.meta.sop_instance_uids)

    path = out.write_sr(_findings(FINDINGS[:1]), headers, tmp_path / "sr.dcm")
    assert len(hd.sr.srread(path).content.get_image_measurement_groups()) == 1
    with pytest.raises(DimensionError, match="CBCT volumes only"):
        out.write_seg(scan, np.ones(scan.shape, np.uint8), {1: "x"}, headers, tmp_path / "seg.dcm")


def test_headers_are_read_from_a_zip_and_a_missing_series_is_named(tmp_path):
    folder = _series(tmp_path, "coronal_stack")
    archive = Path(shutil.make_archive(str(tmp_path / "study"), "zip", folder))
    scan = load_scan(archive)
    headers = out.read_source_headers(archive, scan.meta.series_instance_uid)

    assert sorted(h.SOPInstanceUID for h in headers) == sorted(scan.meta.sop_instance_uids)
    assert all("PixelData" not in h for h in headers)
    with pytest.raises(SeriesNotFoundError, match="1.2.3.4 is not in the input"):
        out.read_source_headers(archive, "1.2.3.4")


def test_non_dicom_input_gives_a_clear_error_and_writes_nothing(tmp_path):
    axes, flips = ORIENTATIONS["ras"]
    nifti = write_itk(store(reference_volume(SHAPE), SPACING, axes, flips), tmp_path / "scan.nii.gz")
    scan = load_scan(nifti)
    target = tmp_path / "out"
    target.mkdir()

    with pytest.raises(UnsupportedFormatError, match="--dicom-out needs a DICOM input"):
        out.read_source_headers(nifti, "1.2.3")
    with pytest.raises(UnsupportedFormatError, match="--dicom-out needs a DICOM input"):
        out.write_seg(scan, _labels(), label_names(), [], target / "seg.dcm")
    with pytest.raises(ScanReadError, match="No DICOM headers"):
        out.write_sr(_findings(FINDINGS), [], target / "sr.dcm")
    assert list(target.iterdir()) == []


def test_headers_of_another_scan_are_refused_and_nothing_is_left(tmp_path):
    folder = _series(tmp_path, "coronal_stack")
    scan = load_scan(folder)
    headers = out.read_source_headers(folder, scan.meta.series_instance_uid)
    other_folder = tmp_path / "other"
    write_series(store(reference_volume(SHAPE), SPACING, *ORIENTATIONS["coronal_stack"]), other_folder)
    other = out.read_source_headers(other_folder, load_scan(other_folder).meta.series_instance_uid)
    normal = np.cross(*np.reshape([float(v) for v in headers[0].ImageOrientationPatient], (2, 3)))
    by_position = sorted(headers, key=lambda h: float(np.dot(normal, [float(v) for v in h.ImagePositionPatient])))
    target = tmp_path / "out"
    target.mkdir()

    with pytest.raises(ScanReadError, match="do not match the analysed scan"):  # top slice missing
        out.write_seg(scan, _labels(), label_names(), by_position[:-1], target / "seg.dcm")
    with pytest.raises(ScanReadError, match="not \\(only\\) those of the analysed series"):
        out.write_seg(scan, _labels(), label_names(), other, target / "seg.dcm")
    assert list(target.iterdir()) == []


def test_an_empty_label_map_is_refused(tmp_path):
    folder = _series(tmp_path, "lps_axial")
    scan = load_scan(folder)
    headers = out.read_source_headers(folder, scan.meta.series_instance_uid)
    with pytest.raises(OutputError, match="label map is empty"):
        out.write_seg(scan, np.zeros(SHAPE, np.uint8), label_names(), headers, tmp_path / "seg.dcm")
    assert not (tmp_path / "seg.dcm").exists()


def test_a_failed_save_leaves_no_file_behind(tmp_path, monkeypatch):
    folder = _series(tmp_path, "lps_axial")
    scan = load_scan(folder)
    headers = out.read_source_headers(folder, scan.meta.series_instance_uid)
    target = tmp_path / "out"
    target.mkdir()
    (target / "seg.dcm").write_bytes(b"previous run")

    def half_write(self, fh, **kwargs):
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(pydicom.Dataset, "save_as", half_write)
    with pytest.raises(OSError, match="disk full"):
        out.write_seg(scan, _labels(), label_names(), headers, target / "seg.dcm")
    assert [p.name for p in target.iterdir()] == ["seg.dcm"]
    assert (target / "seg.dcm").read_bytes() == b"previous run"


def test_identifiers_stay_out_of_logs_and_errors(tmp_path, caplog):
    folder = _series(tmp_path, "coronal_stack")
    caplog.set_level(logging.DEBUG)
    scan = load_scan(folder)
    headers = out.read_source_headers(folder, scan.meta.series_instance_uid)
    seg_path = out.write_seg(scan, _labels(), label_names(), headers, tmp_path / "seg.dcm")
    out.write_sr(_findings(FINDINGS), headers, tmp_path / "sr.dcm", seg_path=seg_path)
    with pytest.raises(ScanReadError) as error:
        out.write_seg(scan, _labels(), label_names(), headers[1:], tmp_path / "bad.dcm")

    text = caplog.text + str(error.value)
    assert "wrote DICOM SEG" in caplog.text
    for secret in PHI_STRINGS:
        assert secret not in text


def test_every_permanent_tooth_has_its_own_snomed_code():
    tooth_codes = {out.tooth_code(fdi).value for fdi in FDI_TEETH}
    assert len(tooth_codes) == 32
    assert codes.SCT.Tooth.value not in tooth_codes
    assert out.tooth_code(32) == codes.SCT.MandibularLeftLateralTooth


def test_measurement_names_map_to_standard_codes_or_local_ones():
    assert out.measurement_code("volume_mm3") == codes.SCT.Volume
    assert out.measurement_code("diameter_px") == codes.SCT.Diameter
    assert out.measurement_code("bone_height_mm") == out.local_code("bone_height")
    assert out.local_code("bone_height").meaning == "Bone height"


def test_without_highdicom_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "highdicom", None)  # makes `import highdicom` fail
    spec = importlib.util.spec_from_file_location("dicom_without_highdicom", out.__file__)
    with pytest.raises(ConfigError, match=r"pip install 'odontoscan\[dicom\]'"):
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
