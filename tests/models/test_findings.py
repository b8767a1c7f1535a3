"""Findings extraction from label maps: the chart, the finding kinds and their measurements.

The label maps are phantom ground truth (pulp folded into its tooth, as a model
predicts it), so every difference from the phantom's ground_truth.json is the
findings engine's own error.
"""

import numpy as np
import pytest
from scipy import ndimage

from odontoscan.datasets.findings_schema import FindingKind, ModelInfo, ScanInfo, ToothStatus, Unit
from odontoscan.datasets.labels import PULP_OFFSET, Label
from odontoscan.datasets.phantom.cbct import generate_cbct
from odontoscan.datasets.phantom.pano import generate_pano
from odontoscan.models.findings import extract_findings
from odontoscan.training.evaluate_findings import FindingCounts, compare

MODEL = ModelInfo(name="truth-labels", version="1", sha256="0" * 64)


def _as_predicted(labels: np.ndarray) -> np.ndarray:
    """Pulp as its tooth, no incisive/lingual canals (what the shipped models predict)."""
    out = labels.copy()
    out[np.isin(out, (Label.LEFT_INCISIVE_CANAL, Label.RIGHT_INCISIVE_CANAL, Label.LINGUAL_CANAL))] = 0
    pulp = (out > PULP_OFFSET + 10) & (out < PULP_OFFSET + 50)
    out[pulp] -= PULP_OFFSET
    return out


@pytest.fixture(scope="module", params=[2001, 2008])
def cbct(request):
    phantom = generate_cbct(request.param, "small")
    found = extract_findings(
        _as_predicted(phantom.labels), phantom.spacing, scan=phantom.ground_truth.scan, model=MODEL,
        image=phantom.image, geometry=phantom.geometry,
    )
    return phantom, found


def test_chart_matches_the_phantom(cbct):
    phantom, found = cbct
    truth = {t.fdi: t.status for t in phantom.ground_truth.teeth}
    assert [t.fdi for t in found.teeth] == sorted(truth)
    wrong = {t.fdi: (t.status, truth[t.fdi]) for t in found.teeth if t.status is not truth[t.fdi]}
    assert not wrong


def test_findings_match_the_phantom(cbct):
    phantom, found = cbct
    metrics = compare(found, phantom.ground_truth).metrics()
    for kind in FindingKind:
        if kind in (FindingKind.IMPACTED_TOOTH, FindingKind.BONE_LOSS):
            continue  # see the chart test and the bone-loss test
        if f"{kind.value}_sensitivity" in metrics:
            assert metrics[f"{kind.value}_sensitivity"] == 1.0, kind
        if f"{kind.value}_precision" in metrics:
            assert metrics[f"{kind.value}_precision"] == 1.0, kind
    # Distances measured the way the ground truth measures them.
    assert metrics["canal_proximity.distance_mm_mae"] < 0.05
    assert metrics["sinus_proximity.distance_mm_mae"] < 0.05


def test_bone_loss_is_found_against_the_teeth_of_the_same_type():
    counts = FindingCounts()
    for seed in (2001, 2005, 2006, 2007, 2009, 2013):
        phantom = generate_cbct(seed, "small")
        found = extract_findings(_as_predicted(phantom.labels), phantom.spacing, scan=phantom.ground_truth.scan, model=MODEL,
                                 image=phantom.image, geometry=phantom.geometry)
        counts.add(compare(found, phantom.ground_truth))
    metrics = counts.metrics()
    assert counts.truth["bone_loss"] >= 10
    assert metrics["bone_loss_sensitivity"] >= 0.8 and metrics["bone_loss_precision"] >= 0.8
    assert metrics["bone_loss.cej_to_crest_mm_mae"] < 1.0


def test_a_stray_speck_of_bone_label_beside_a_crown_does_not_hide_its_bone_loss():
    phantom = generate_cbct(2001, "small")  # 45 has lost bone: its crest 5.2 mm below the CEJ
    labels = _as_predicted(phantom.labels)
    tooth = labels == 45
    level = np.argwhere(tooth)[:, 2].max() - 2  # just below the crown tip (z is up)
    beside = ndimage.binary_dilation(tooth) & (labels == 0)
    beside[..., :level] = beside[..., level + 1 :] = False
    labels[tuple(np.argwhere(beside)[0])] = Label.LOWER_JAWBONE  # one voxel the model mistook for bone
    found = extract_findings(labels, phantom.spacing, scan=phantom.ground_truth.scan, model=MODEL,
                             image=phantom.image, geometry=phantom.geometry)
    loss = [f for f in found.findings if f.kind is FindingKind.BONE_LOSS and f.fdi == 45]
    assert len(loss) == 1 and loss[0].measurements["cej_to_crest_mm"].value > 4.0


def test_findings_carry_locations_slices_and_units(cbct):
    phantom, found = cbct
    assert len({f.id for f in found.findings}) == len(found.findings)
    truth = {(f.kind, f.fdi): f for f in phantom.ground_truth.findings}
    for finding in found.findings:
        assert finding.location_mm is not None and len(finding.location_mm) == 3
        assert 0 <= finding.evidence.slice_index < phantom.labels.shape[2]
        assert all(m.unit in (Unit.MM, Unit.MM3, Unit.DEGREE) for m in finding.measurements.values())
        expected = truth.get((finding.kind, finding.fdi))
        if expected is not None and finding.kind is not FindingKind.EDENTULOUS_SITE:
            # the same object: centres within a couple of voxels in the patient frame
            assert np.linalg.norm(np.subtract(finding.location_mm, expected.location_mm)) < 4.0, finding.id


def test_implant_and_pontic_sites_are_numbered_by_the_gap_they_fill():
    phantom = generate_cbct(2001, "small")
    labels = _as_predicted(phantom.labels)
    truth = {t.fdi: t.status for t in phantom.ground_truth.teeth}
    found = extract_findings(labels, phantom.spacing, scan=phantom.ground_truth.scan, model=MODEL)
    for fdi, status in truth.items():
        if status in (ToothStatus.IMPLANT, ToothStatus.BRIDGE_PONTIC):
            assert found.tooth(fdi).status is status


def test_radiograph_chart_and_pixel_units_without_spacing():
    pano = generate_pano(1000, "small")
    labels = _as_predicted(pano.labels)
    found = extract_findings(labels, pano.spacing, scan=pano.ground_truth.scan, model=MODEL, image=pano.image)
    assert compare(found, pano.ground_truth).metrics()["tooth_status_accuracy"] >= 0.9
    scan = ScanInfo(modality="PX", shape=list(labels.shape), spacing_mm=[1.0, 1.0], pixel_spacing_known=False)
    in_pixels = extract_findings(labels, (1.0, 1.0), scan=scan, model=MODEL)
    units = {m.unit for f in in_pixels.findings for m in f.measurements.values()}
    assert units and units <= {Unit.PX, Unit.PX2, Unit.DEGREE}


def _tooth_block(caries_depth_voxels: int) -> tuple[np.ndarray, np.ndarray]:
    """A 20x20x20 mm tooth (0.5 mm voxels) with a dark 4 mm pulp at its centre and a
    caries pit of the given depth entering from the +x face."""
    labels = np.zeros((60, 60, 60), np.uint8)
    image = np.zeros(labels.shape, np.float32)
    labels[10:50, 10:50, 10:50] = 36
    image[10:50, 10:50, 10:50] = 1800.0
    image[26:34, 26:34, 26:34] = 600.0  # pulp
    labels[50 - caries_depth_voxels : 50, 28:32, 28:32] = Label.CARIES
    image[50 - caries_depth_voxels : 50, 28:32, 28:32] = 1000.0  # radiolucent
    labels[:, :, :8] = Label.LOWER_JAWBONE
    return labels, image


def _caries_on_block(labels: np.ndarray, image: np.ndarray) -> list:
    """Caries findings of a :func:`_tooth_block` label map (0.5 mm voxels)."""
    scan = ScanInfo(modality="CT", shape=list(labels.shape), spacing_mm=[0.5] * 3)
    found = extract_findings(labels, (0.5, 0.5, 0.5), scan=scan, model=MODEL, image=image)
    return [f for f in found.findings if f.kind is FindingKind.CARIES]


@pytest.mark.parametrize("depth, grade", [(2, "enamel"), (8, "dentin"), (15, "near_pulp")])
def test_caries_depth_class(depth, grade):
    caries = _caries_on_block(*_tooth_block(depth))
    assert len(caries) == 1 and caries[0].fdi == 36 and caries[0].grade == grade
    assert caries[0].measurements["volume_mm3"].value == pytest.approx(depth * 16 * 0.125)


@pytest.mark.parametrize("grey", [1800.0, 600.0])
def test_caries_labels_as_bright_as_sound_tooth_or_as_dark_as_pulp_are_not_reported(grey):
    labels, image = _tooth_block(8)
    image[labels == Label.CARIES] = grey
    assert not _caries_on_block(labels, image)


def test_enamel_caries_darker_than_the_enamel_around_them_but_not_than_dentin_are_reported():
    labels, image = _tooth_block(2)
    image[46:50, 10:50, 10:50] = 2800.0  # a 2 mm enamel cap on the +x face
    image[labels == Label.CARIES] = 1850.0  # darker than enamel, as bright as the tooth's median (dentin)
    caries = _caries_on_block(labels, image)
    assert len(caries) == 1 and caries[0].fdi == 36 and caries[0].grade == "enamel"


@pytest.mark.parametrize("depth, reported", [(1, True), (2, False)])
def test_a_caries_piece_of_a_few_voxels_needs_less_contrast_than_a_larger_one(depth, reported):
    """Partial volume: a shallow lesion shares its few voxels with sound enamel, so 7%
    darker than the tooth is caries in 16 voxels but not in 32."""
    labels, image = _tooth_block(depth)
    image[labels == Label.CARIES] = 0.93 * 1800.0
    assert bool(_caries_on_block(labels, image)) is reported


def test_caries_labels_whose_darker_part_is_air_are_not_reported():
    """A label spilling out of the crown into air: its mean still looks like a cavity
    (half the tooth's grey value) but its outer three voxels are air."""
    labels, image = _tooth_block(8)
    image[47:50, 28:32, 28:32] = 100.0
    image[42:47, 28:32, 28:32] = 1300.0
    assert not _caries_on_block(labels, image)
    image[47:50, 28:32, 28:32] = 900.0  # the same cavity without the air
    assert len(_caries_on_block(labels, image)) == 1


def test_caries_labels_off_every_tooth_are_not_reported():
    labels, image = _tooth_block(8)
    labels[labels == Label.CARIES] = 36
    labels[2:6, 28:32, 28:32] = Label.CARIES  # 2 mm outside the tooth's -x face, in soft tissue
    labels[labels == 36] = 0  # ... and no tooth within reach at all
    assert not _caries_on_block(labels, image)


def test_a_stray_bridge_piece_far_from_any_gap_is_no_pontic():
    phantom = generate_cbct(2002, "small")
    labels = _as_predicted(phantom.labels)
    truth = {t.fdi: t.status for t in phantom.ground_truth.teeth}
    missing = {f for f, s in truth.items() if s is ToothStatus.MISSING}
    host = next(f for f in (36, 46, 37, 47) if not {f - 1, f, f + 1} & missing and truth[f] is ToothStatus.PRESENT)
    tooth = labels == host
    z = np.nonzero(tooth)[2]
    crown = tooth & (np.arange(labels.shape[2]) > np.median(z))[None, None, :]
    labels[crown] = Label.BRIDGE  # a network calling half a molar "bridge"
    found = extract_findings(labels, phantom.spacing, scan=phantom.ground_truth.scan, model=MODEL)
    assert missing and all(found.tooth(f).status is ToothStatus.MISSING for f in missing)


def test_specks_and_thin_streaks_labelled_lesion_are_not_reported():
    phantom = generate_cbct(2002, "small")
    labels = _as_predicted(phantom.labels)
    real = {f.fdi for f in phantom.ground_truth.findings if f.kind is FindingKind.PERIAPICAL_LESION}
    host = next(f for f in (46, 47, 16, 17) if (labels == f).any() and f not in real)
    x, y, z = np.nonzero(labels == host)
    apex = (int(np.median(x)), int(np.median(y)), int(z.min() if host // 10 == 4 else z.max()))
    labels[apex] = Label.PERIAPICAL_LESION  # a one-voxel speck at an apex
    labels[x.min() - 2, y.min():y.min() + 14, int(np.median(z))] = Label.PERIAPICAL_LESION  # an 11 mm streak beside the root
    found = extract_findings(labels, phantom.spacing, scan=phantom.ground_truth.scan, model=MODEL)
    reported = {f.fdi for f in found.findings if f.kind is FindingKind.PERIAPICAL_LESION}
    assert real and reported == real


@pytest.mark.parametrize(("seed", "fdi"), [(3001, 38), (3004, 48)])
def test_third_molars_tilted_less_than_30_degrees_are_impacted(seed, fdi):
    phantom = generate_cbct(seed, "small")  # these two tilt their impacted molar by ~25 degrees
    assert {t.fdi: t.status for t in phantom.ground_truth.teeth}[fdi] is ToothStatus.IMPACTED
    found = extract_findings(_as_predicted(phantom.labels), phantom.spacing, scan=phantom.ground_truth.scan, model=MODEL, image=phantom.image)
    assert {t.fdi: t.status for t in found.teeth}[fdi] is ToothStatus.IMPACTED


def test_a_sliver_of_a_third_molars_number_elsewhere_does_not_tilt_it():
    phantom = generate_cbct(3005, "small")  # 48 erupted and upright
    labels = _as_predicted(phantom.labels)
    x, y, z = np.argwhere(labels == 48).min(axis=0)
    labels[x - 10 : x - 8, y : y + 2, z - 8 : z - 2] = 48  # a streak of 48 on the far side of 47, a few mm below
    found = extract_findings(labels, phantom.spacing, scan=phantom.ground_truth.scan, model=MODEL, image=phantom.image)
    assert {t.fdi: t.status for t in found.teeth}[48] is ToothStatus.PRESENT


@pytest.mark.parametrize("cap", [Label.RESTORATION, Label.BRIDGE])
def test_a_small_stump_under_a_crown_the_model_called_filling_or_bridge_is_crowned(cap):
    phantom = generate_cbct(2000, "small")  # 33 is crowned; no implant near it
    labels = _as_predicted(phantom.labels)
    assert {t.fdi: t.status for t in phantom.ground_truth.teeth}[33] is ToothStatus.CROWN
    crown_piece = np.zeros(labels.shape, bool)
    stump = labels == 33
    near = ndimage.binary_dilation(stump, iterations=3)
    crown_piece[near & np.isin(labels, (Label.CROWN, Label.RESTORATION))] = True  # the crown and its core build-up
    canines = [int(np.count_nonzero(labels == f)) for f in (13, 23, 43)]
    # The model drew a quarter of a canine under the crown (a fragment by size alone) ...
    keep = int(0.25 * np.median(canines))
    distance = ndimage.distance_transform_edt(~crown_piece)
    order = np.argsort(distance[stump])
    index = np.argwhere(stump)
    labels[tuple(index[order[keep:]].T)] = Label.LOWER_JAWBONE
    # ... and called the crown on it something else.
    labels[crown_piece] = cap
    found = extract_findings(labels, phantom.spacing, scan=phantom.ground_truth.scan, model=MODEL)
    assert found.tooth(33).status is ToothStatus.CROWN
    labels[crown_piece] = 0  # without anything capping it, that quarter is a fragment: missing
    found = extract_findings(labels, phantom.spacing, scan=phantom.ground_truth.scan, model=MODEL)
    assert found.tooth(33).status is ToothStatus.MISSING


def test_components_keep_each_piece_in_its_own_box_with_the_margin_asked_for():
    from odontoscan.models.findings.context import components

    mask = np.zeros((20, 20, 20), bool)
    mask[0:3, 0:2, 0:2] = True  # at the corner: its margin is clipped
    mask[10:12, 10:13, 10:11] = True
    mask[18, 5, 5] = True  # a speck
    pieces = components(mask, min_voxels=2, margin=2)
    assert [p.box for p in pieces] == [
        (slice(0, 5), slice(0, 4), slice(0, 4)),
        (slice(8, 14), slice(8, 15), slice(8, 13)),
    ]
    assert [int(p.mask.sum()) for p in pieces] == [12, 6]
    assert np.allclose(pieces[1].centre(), [10.5, 11, 10])
    whole = np.zeros_like(mask)
    for piece in pieces:
        piece.paste(whole)
    mask[18, 5, 5] = False
    assert np.array_equal(whole, mask)


def test_a_dark_spot_enclosed_in_the_tooth_is_pulp_not_caries():
    labels, image = _tooth_block(8)
    labels[labels == Label.CARIES] = 36
    image[labels == 36] = 1800.0
    labels[30:34, 20:24, 20:24] = Label.CARIES  # inside the crown, nowhere near its surface
    image[30:34, 20:24, 20:24] = 1000.0  # as radiolucent as the caries that are reported
    assert not _caries_on_block(labels, image)


@pytest.mark.parametrize("sealed_voxels, reported", [(1, True), (2, False), (4, False)])
def test_a_cavity_whose_mouth_the_model_painted_as_tooth_is_caries_until_it_lies_deep(sealed_voxels, reported):
    labels, image = _tooth_block(8)
    labels[50 - sealed_voxels : 50, 28:32, 28:32] = 36  # the mouth of the pit (0.5 mm voxels) labelled tooth
    assert bool(_caries_on_block(labels, image)) is reported  # 1.0 mm under the surface: caries; 2.5 mm: a dark spot inside


def test_a_lesion_label_on_bone_as_bright_as_its_surroundings_is_not_reported():
    phantom = generate_cbct(2001, "small")
    labels = _as_predicted(phantom.labels)
    real = {f.fdi for f in phantom.ground_truth.findings if f.kind is FindingKind.PERIAPICAL_LESION}
    image = phantom.image.copy()
    lesion = labels == Label.PERIAPICAL_LESION
    bone = np.isin(labels, (Label.LOWER_JAWBONE, Label.UPPER_JAWBONE)) & ndimage.binary_dilation(lesion, iterations=3)
    args = dict(scan=phantom.ground_truth.scan, model=MODEL, geometry=phantom.geometry)
    found = extract_findings(labels, phantom.spacing, image=image, **args)
    assert real and {f.fdi for f in found.findings if f.kind is FindingKind.PERIAPICAL_LESION} == real
    image[lesion] = np.median(image[bone])  # the model painted a lesion where the bone is sound
    found = extract_findings(labels, phantom.spacing, image=image, **args)
    assert not [f for f in found.findings if f.kind is FindingKind.PERIAPICAL_LESION]


def test_a_lesion_belongs_to_the_tooth_on_whose_axis_it_lies_not_the_neighbour_with_the_nearer_tip():
    spacing = (0.5, 0.5, 0.5)
    labels = np.zeros((50, 30, 70), np.uint8)
    image = np.zeros(labels.shape, np.float32)
    labels[:, :, :62] = Label.LOWER_JAWBONE
    image[:, :, :62] = 1200.0
    labels[16:24, 11:19, 30:66] = 35  # a premolar, apex at z = 30 (15 mm up)
    labels[25:33, 11:19, 20:66] = 36  # its neighbour's root reaches further down, beside the lesion
    image[np.isin(labels, (35, 36))] = 1800.0
    labels[19:21, 14:16, 34:62] = Label.ROOT_CANAL_FILLING  # 35 is root-filled: a cause for a lesion
    image[labels == Label.ROOT_CANAL_FILLING] = 3000.0
    x, y, z = np.ogrid[:50, :30, :70]
    lesion = (x - 20) ** 2 + (y - 15) ** 2 + (z - 23) ** 2 <= 9  # below 35's apex, on its axis
    labels[lesion] = Label.PERIAPICAL_LESION
    image[lesion] = 400.0
    scan = ScanInfo(modality="CT", shape=list(labels.shape), spacing_mm=list(spacing))
    found = extract_findings(labels, spacing, scan=scan, model=MODEL, image=image)
    assert [f.fdi for f in found.findings if f.kind is FindingKind.PERIAPICAL_LESION] == [35]


def test_a_large_lesion_centred_well_below_its_root_tip_still_belongs_to_its_tooth():
    """A 7 mm lesion below a root-filled premolar: its centre lies 6.5 mm under the
    premolar's apex, further than the neighbour's tip beside it (5.8 mm) but on the
    premolar's axis."""
    spacing = (0.5, 0.5, 0.5)
    labels = np.zeros((50, 30, 70), np.uint8)
    image = np.zeros(labels.shape, np.float32)
    labels[:, :, :62] = Label.LOWER_JAWBONE
    image[:, :, :62] = 1200.0
    labels[16:24, 11:19, 30:66] = 35  # apex at z = 30
    labels[28:35, 11:19, 17:66] = 36  # a long neighbouring root, tip at z = 17
    image[np.isin(labels, (35, 36))] = 1800.0
    labels[19:21, 14:16, 34:62] = Label.ROOT_CANAL_FILLING
    image[labels == Label.ROOT_CANAL_FILLING] = 3000.0
    x, y, z = np.ogrid[:50, :30, :70]
    lesion = (x - 20) ** 2 + (y - 15) ** 2 + (z - 17) ** 2 <= 49
    labels[lesion] = Label.PERIAPICAL_LESION
    image[lesion] = 400.0
    scan = ScanInfo(modality="CT", shape=list(labels.shape), spacing_mm=list(spacing))
    found = extract_findings(labels, spacing, scan=scan, model=MODEL, image=image)
    assert [f.fdi for f in found.findings if f.kind is FindingKind.PERIAPICAL_LESION] == [35]


def _tooth_in_bone(fdi: int = 35, width: int = 8, spacing: float = 0.5, treated: bool = True):
    """A lower tooth (``width`` voxels wide in x, apex at z = 30) in bone of 1200 HU, noisy
    (seeded), root-filled when ``treated`` (a cause for a periapical lesion); returns
    labels, image, the scan info and the voxel grid."""
    labels = np.zeros((50, 30, 70), np.uint8)
    labels[:, :, :62] = Label.LOWER_JAWBONE
    labels[20 - width // 2 : 20 + width - width // 2, 11:19, 30:66] = fdi
    if treated:
        labels[19:21, 14:16, 34:62] = Label.ROOT_CANAL_FILLING
    image = np.where(labels == fdi, 1800.0, np.where(labels > 0, 1200.0, -1000.0)).astype(np.float32)
    image[labels == Label.ROOT_CANAL_FILLING] = 3000.0
    image += np.random.default_rng(0).normal(0.0, 30.0, image.shape).astype(np.float32)
    scan = ScanInfo(modality="CT", shape=list(labels.shape), spacing_mm=[spacing] * 3)
    return labels, image, scan, np.ogrid[:50, :30, :70]


def _paint_apical_lesion(labels, image, grid) -> np.ndarray:
    """A 3 mm lesion (a quarter of the bone's grey) 2.5 mm below the apex of
    :func:`_tooth_in_bone`'s tooth, painted into ``labels`` and ``image``; returns its mask."""
    x, y, z = grid
    ball = (x - 20) ** 2 + (y - 15) ** 2 + (z - 25) ** 2 <= 9
    labels[ball] = Label.PERIAPICAL_LESION
    image[ball] = 300.0
    return ball


def _lesions(labels, image, scan, spacing: float = 0.5) -> dict[int, float]:
    found = extract_findings(labels, (spacing,) * 3, scan=scan, model=MODEL, image=image)
    return {f.fdi: f.measurements["volume_mm3"].value for f in found.findings if f.kind is FindingKind.PERIAPICAL_LESION}


@pytest.mark.parametrize("painted, reported", [((slice(17, 23), slice(12, 18), slice(62, 66)), 18.0), ((slice(18, 22), slice(12, 16), 65), None)])
def test_a_restoration_is_a_filled_cavity_not_a_speck_of_bright_enamel(painted, reported):
    labels, image, scan, _ = _tooth_in_bone(treated=False)
    labels[painted] = Label.RESTORATION  # a 3 x 3 x 2 mm occlusal filling, or one layer of 2 x 2 mm on the crown
    image[painted] = 2600.0
    found = extract_findings(labels, (0.5,) * 3, scan=scan, model=MODEL, image=image)
    volumes = [f.measurements["volume_mm3"].value for f in found.findings if f.kind is FindingKind.RESTORATION]
    assert volumes == ([reported] if reported else [])


def test_a_lesion_label_drawn_wider_than_the_lesion_is_still_reported():
    labels, image, scan, (x, y, z) = _tooth_in_bone()
    ball = (x - 20) ** 2 + (y - 15) ** 2 + (z - 25) ** 2
    image[ball <= 9] = 300.0  # the lesion: 3 mm across, a quarter of the bone's grey
    labels[ball <= 20] = Label.PERIAPICAL_LESION  # the model's label reaches a voxel or two into the bone all round
    assert list(_lesions(labels, image, scan)) == [35]


def test_air_or_a_stretch_of_the_canal_labelled_lesion_is_not_reported():
    labels, image, scan, (x, y, z) = _tooth_in_bone()
    ball = _paint_apical_lesion(labels, image, (x, y, z))
    assert list(_lesions(labels, image, scan)) == [35]
    air = image.copy()
    air[ball] = -700.0  # darker than any soft tissue: an air pocket, not a lesion
    assert _lesions(labels, air, scan) == {}
    canal = np.broadcast_to((y - 15) ** 2 + (z - 24) ** 2 <= 9, labels.shape)  # the canal runs along x by the apex...
    stretch = ((y - 15) ** 2 + (z - 24) ** 2 <= 4) & (abs(x - 20) <= 4)  # ... and the model painted a stretch of its lumen lesion
    in_canal = np.where(canal, Label.LEFT_IAC, np.where(ball, Label.LOWER_JAWBONE, labels))
    in_canal[stretch] = Label.PERIAPICAL_LESION
    image[ball] = 1200.0
    image[canal] = 300.0
    assert _lesions(in_canal, image, scan) == {}


def test_a_radiolucency_beside_the_root_far_from_its_end_is_not_a_periapical_lesion():
    labels, image, scan, (x, y, z) = _tooth_in_bone()  # 35's apex at z = 30, i.e. 15 mm up
    for centre_z, reported in ((26, [35]), (52, [])):  # 2 mm below the apex; 11 mm up the root's side
        found, grey = labels.copy(), image.copy()
        ball = (x - 26) ** 2 + (y - 15) ** 2 + (z - centre_z) ** 2 <= 6  # touching the root's distal side
        found[ball & (found != 35)] = Label.PERIAPICAL_LESION
        grey[ball & (found != 35)] = 300.0
        assert list(_lesions(found, grey, scan)) == reported


def test_a_radiolucency_at_a_tooth_with_no_cause_for_a_dead_pulp_needs_to_be_big_and_dark():
    for treated in (True, False):
        labels, image, scan, (x, y, z) = _tooth_in_bone(treated=treated)
        ball = (x - 20) ** 2 + (y - 15) ** 2 + (z - 25) ** 2
        small = ball <= 6  # 2.5 mm across (8 mm3), a quarter of the bone's grey
        labels[small] = Label.PERIAPICAL_LESION
        image[small] = 300.0
        assert list(_lesions(labels, image, scan)) == ([35] if treated else [])
        big = ball <= 25  # 5 mm across (65 mm3)
        labels[big] = Label.PERIAPICAL_LESION
        for grey, reported in ((100.0, [35]), (300.0, [35]), (420.0, [35] if treated else [])):  # soft tissue; 1/4; 0.35 of the bone
            image[big] = grey
            assert list(_lesions(labels, image, scan)) == reported


def test_a_lesion_half_outside_the_jaw_is_not_reported():
    labels, image, scan, (x, y, z) = _tooth_in_bone()
    _paint_apical_lesion(labels, image, (x, y, z))
    assert list(_lesions(labels, image, scan)) == [35]
    beyond = (x >= 22) & (labels == Label.LOWER_JAWBONE)  # the cortical plate ends beside it: lip, not bone
    labels[beyond] = 0
    image[beyond] = 40.0
    assert _lesions(labels, image, scan) == {}


def test_the_dark_follicle_around_an_impacted_third_molar_is_not_a_periapical_lesion():
    phantom = generate_cbct(3001, "small")  # 38 impacted, 37 erupted
    labels = _as_predicted(phantom.labels)
    image = phantom.image.copy()
    statuses = {t.fdi: t.status for t in phantom.ground_truth.teeth}
    assert statuses[38] is ToothStatus.IMPACTED and statuses[37] is ToothStatus.PRESENT
    args = dict(scan=phantom.ground_truth.scan, model=MODEL, geometry=phantom.geometry)
    reported = {}
    for fdi in (37, 38):
        one, grey = labels.copy(), image.copy()
        tooth = np.argwhere(one == fdi)
        crown = tooth[tooth[:, 2].argmax()]
        one[tuple(crown)] = Label.CARIES  # a carious spot on it: a cause, were it erupted
        apex = tooth[tooth[:, 2].argmin()]
        x, y, z = np.ogrid[tuple(slice(0, n) for n in one.shape)]
        ball = ((x - apex[0] + 3) ** 2 + (y - apex[1]) ** 2 + (z - apex[2]) ** 2 <= 2) & (one != fdi)
        one[ball] = Label.PERIAPICAL_LESION  # ~2.5 mm across (10 mm3), at its root end, clear of the canal
        grey[ball] = 150.0
        found = extract_findings(one, phantom.spacing, image=grey, **args)
        reported[fdi] = [f.fdi for f in found.findings if f.kind is FindingKind.PERIAPICAL_LESION]
    assert reported == {37: [26, 37], 38: [26]}  # 26: the phantom's own lesion


def test_two_small_lesions_at_one_molar_are_each_reported_not_judged_as_one_long_piece():
    labels, image, scan, (x, y, z) = _tooth_in_bone(fdi=36, width=20)
    for centre in (12, 28):  # at the ends of the root: 8 mm apart, 2.5 mm across each
        ball = (x - centre) ** 2 + (y - 15) ** 2 + (z - 27) ** 2 <= 6
        labels[ball] = Label.PERIAPICAL_LESION
        image[ball] = 300.0
    assert list(_lesions(labels, image, scan)) == [36]


def test_a_lesion_only_two_voxels_thick_is_reported():
    labels, image, scan, _ = _tooth_in_bone()
    small = (slice(19, 21), slice(14, 16), slice(26, 29))  # 1.6 x 1.6 x 2.4 mm at 0.8 mm: no core to open
    labels[small] = Label.PERIAPICAL_LESION
    image[small] = 300.0
    assert list(_lesions(labels, image, scan, spacing=0.8)) == [35]


def test_a_small_lower_incisor_is_measured_against_the_lower_incisors_not_the_upper_ones():
    phantom = generate_cbct(2001, "small")
    labels = _as_predicted(phantom.labels)
    assert {t.fdi: t.status for t in phantom.ground_truth.teeth}[32] is ToothStatus.PRESENT
    lower = np.median([np.count_nonzero(labels == f) for f in (31, 41, 42)])
    every = np.median([np.count_nonzero(labels == f) for f in (11, 12, 21, 22, 31, 41, 42)])
    tooth = np.argwhere(labels == 32)
    keep = int(0.4 * lower)  # a model that gave most of 32 to its neighbour
    assert keep < 0.35 * every  # a fragment by the size of all incisors, upper ones included
    order = np.argsort(tooth[:, 2])  # keep its root end, give the crown side to 31
    labels[tuple(tooth[order[keep:]].T)] = 31
    found = extract_findings(labels, phantom.spacing, scan=phantom.ground_truth.scan, model=MODEL)
    assert found.tooth(32).status is ToothStatus.PRESENT
