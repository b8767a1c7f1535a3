"""Left/right tooth numbering from the midline: a "midline" model's teeth get their FDI numbers."""

import numpy as np
import pytest
from scipy import ndimage

from odontoscan.datasets.labels import FDI_TEETH, PULP_OFFSET
from odontoscan.datasets.phantom.cbct import generate_cbct
from odontoscan.datasets.phantom.pano import generate_pano
from odontoscan.models.metadata import ModelMetadata
from odontoscan.datasets.labels import Label, arch_of
from odontoscan.models.teeth import absorb_fragments, assign_tooth_sides, left_twin, midline_plane, restore_swallowed_teeth, tidy_teeth
from odontoscan.training.config import LabelConfig

TOOTH_AND_PULP = {k: k for k in FDI_TEETH} | {PULP_OFFSET + k: k for k in FDI_TEETH}


def _teeth_only_structures(labels: np.ndarray) -> np.ndarray:
    """Label map with pulp counted as its tooth, everything else kept."""
    out = labels.copy()
    pulp = (labels > PULP_OFFSET) & (labels < PULP_OFFSET + 50)
    out[pulp] = labels[pulp] - PULP_OFFSET
    return out


def _fold(labels: np.ndarray) -> np.ndarray:
    """What a "midline" model predicts: every left tooth as its right twin."""
    folded = labels.copy()
    for fdi in FDI_TEETH:
        if fdi // 10 in (2, 3):
            folded[labels == fdi] = {2: 1, 3: 4}[fdi // 10] * 10 + fdi % 10
    return folded


def _tooth_agreement(result: np.ndarray, truth: np.ndarray) -> float:
    teeth = np.isin(truth, FDI_TEETH)
    return float(np.mean(result[teeth] == truth[teeth]))


@pytest.mark.parametrize("seed", [2000, 2005])
def test_phantom_teeth_get_their_sides_back(seed):
    phantom = generate_cbct(seed, "small")
    truth = _teeth_only_structures(phantom.labels)
    result = assign_tooth_sides(_fold(truth), phantom.spacing)
    assert _tooth_agreement(result, truth) > 0.995
    assert np.array_equal(result[~np.isin(truth, FDI_TEETH)], truth[~np.isin(truth, FDI_TEETH)])  # nothing else touched


def test_mirrored_head_swaps_sides_and_turned_head_keeps_them():
    phantom = generate_cbct(2003, "small")
    truth = _teeth_only_structures(phantom.labels)
    # A mirror image puts each tooth on the other side: 16 becomes 26 and so on.
    mirrored = truth[::-1].copy()
    swapped = mirrored.copy()
    for fdi in FDI_TEETH:
        swapped[mirrored == fdi] = {1: 2, 2: 1, 3: 4, 4: 3}[fdi // 10] * 10 + fdi % 10
    for side in (3, 4, 5, 6):  # canals and sinuses keep their ids: the model predicts them itself
        swapped[mirrored == side] = side
    result = assign_tooth_sides(_fold(mirrored), phantom.spacing)
    assert _tooth_agreement(result, swapped) > 0.995
    # A head turned 25 degrees about the vertical axis and tilted 10 about left-right.
    turned = ndimage.rotate(truth, 25, axes=(0, 1), order=0, reshape=True)
    turned = ndimage.rotate(turned, 10, axes=(1, 2), order=0, reshape=True)
    result = assign_tooth_sides(_fold(turned), phantom.spacing)
    assert _tooth_agreement(result, turned) > 0.99


def test_missing_front_teeth_and_missing_side_still_numbered():
    phantom = generate_cbct(2001, "small")
    truth = _teeth_only_structures(phantom.labels)
    gone = np.isin(truth, (11, 21, 12, 41, 31, 36, 37, 38))
    truth[gone] = 1  # as if the sites had healed into bone
    result = assign_tooth_sides(_fold(truth), phantom.spacing)
    assert _tooth_agreement(result, truth) > 0.99


def test_panoramic_teeth_get_their_sides_back():
    pano = generate_pano(1001, "small")
    truth = _teeth_only_structures(pano.labels)
    result = assign_tooth_sides(_fold(truth), pano.spacing)
    assert _tooth_agreement(result, truth) > 0.995
    normal, _ = midline_plane(_fold(truth), pano.spacing)
    assert normal[1] < -0.95  # the patient's right is the image's left


def test_maps_without_teeth():
    labels = np.zeros((8, 8, 8), np.uint8)
    assert np.array_equal(assign_tooth_sides(labels, (1.0, 1.0, 1.0)), labels)
    with pytest.raises(ValueError, match="neither jaws nor teeth"):
        midline_plane(labels, (1.0, 1.0, 1.0))


def test_midline_label_config_folds_left_teeth_and_their_pulp():
    config = LabelConfig(classes=[0, 1, 11, 46], merge={111: 11}, tooth_sides="midline")
    assert config.merge == {111: 11, 21: 11, 121: 11, 36: 46, 136: 46}
    with pytest.raises(ValueError, match="remove left ids \\[21\\]"):
        LabelConfig(classes=[0, 11, 21], tooth_sides="midline")


def test_midline_metadata_lists_left_teeth_as_outputs(tmp_path):
    from helpers.onnx_models import metadata_for

    base = metadata_for([0, 1, 11, 46]).model_dump()
    base.update(
        tooth_sides="midline",
        merge={111: 11, 21: 11, 121: 11, 36: 46, 136: 46},
        label_names={k: f"label {k}" for k in (0, 1, 11, 46, 21, 36)},
    )
    meta = ModelMetadata(**base)
    assert meta.output_classes == [0, 1, 11, 46, 21, 36]
    assert meta.output_merge == {111: 11, 121: 21, 136: 36}  # ground truth keeps its sides
    assert left_twin(46) == 36
    with pytest.raises(ValueError, match="right-side tooth ids only"):
        ModelMetadata(**(base | {"classes": [0, 1, 11, 21]}))


def test_a_sliver_of_one_tooth_number_on_its_neighbour_joins_the_neighbour():
    labels = np.zeros((40, 12, 12), np.uint8)
    labels[2:10, 2:10, 2:10] = 11
    labels[12:20, 2:10, 2:10] = 12
    labels[19, 2:6, 2:10] = 13  # a sliver of 13 on tooth 12
    labels[24:32, 2:10, 2:10] = 14
    labels[36:38, 2:4, 2:4] = 15  # a small piece touching nothing: kept
    out = absorb_fragments(labels)
    assert (out[12:20, 2:10, 2:10] == 12).all()
    assert (out[2:10, 2:10, 2:10] == 11).all() and (out[24:32, 2:10, 2:10] == 14).all()
    assert (out[36:38, 2:4, 2:4] == 15).all()


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float(np.count_nonzero(a & b)) / max(1, int(np.count_nonzero(a)) + int(np.count_nonzero(b)))


@pytest.mark.parametrize(("seed", "swallowed", "swallower"), [(2000, 42, 41), (2001, 31, 32), (2001, 44, 45), (2005, 41, 31)])
def test_a_tooth_painted_with_its_neighbours_number_gets_its_own_back(seed, swallowed, swallower):
    phantom = generate_cbct(seed, "small")
    truth = _teeth_only_structures(phantom.labels)
    assert (truth == swallowed).any() and (truth == swallower).any()
    merged = truth.copy()
    merged[truth == swallowed] = swallower  # two touching teeth, one number: the chart would call one missing
    result = restore_swallowed_teeth(merged, phantom.spacing)
    assert _dice(result == swallowed, truth == swallowed) > 0.75
    assert _dice(result == swallower, truth == swallower) > 0.75
    others = ~np.isin(truth, (swallowed, swallower))
    assert np.array_equal(result[others], merged[others])  # nothing else touched



@pytest.mark.parametrize(("seed", "shared"), [(2001, 31), (2000, 41), (2001, 12)])
def test_a_tooth_shared_out_between_both_neighbours_gets_its_own_back(seed, shared):
    phantom = generate_cbct(seed, "small")
    truth = _teeth_only_structures(phantom.labels)
    arch = arch_of(shared)
    a, b = arch[arch.index(shared) - 1], arch[arch.index(shared) + 1]
    sp = np.asarray(phantom.spacing)
    centre_a, centre_b = (np.argwhere(truth == n).mean(axis=0) * sp for n in (a, b))
    index = np.argwhere(truth == shared)
    nearer_a = np.linalg.norm(index * sp - centre_a, axis=1) < np.linalg.norm(index * sp - centre_b, axis=1)
    merged = truth.copy()
    merged[tuple(index[nearer_a].T)] = a  # each neighbour painted the half of it next to it
    merged[tuple(index[~nearer_a].T)] = b
    result = restore_swallowed_teeth(merged, phantom.spacing)
    assert _dice(result == shared, truth == shared) > 0.6
    assert min(_dice(result == n, truth == n) for n in (a, b)) > 0.75

@pytest.mark.parametrize("seed", [2000, 2002, 2004, 2006, 3025])
def test_correct_maps_and_real_gaps_are_left_alone(seed):
    """Ground truth (implants, pontics, crowned stumps, missing teeth, turned heads) needs no help."""
    phantom = generate_cbct(seed, "small")
    truth = _teeth_only_structures(phantom.labels)
    assert np.array_equal(restore_swallowed_teeth(truth, phantom.spacing), truth)
    gap = truth.copy()
    gap[truth == 42] = Label.LOWER_JAWBONE  # a tooth really missing: its neighbours keep their size
    assert np.array_equal(restore_swallowed_teeth(gap, phantom.spacing), gap)


def test_a_gap_holding_an_implant_is_not_given_a_tooth():
    phantom = generate_cbct(2000, "small")
    truth = _teeth_only_structures(phantom.labels)
    merged = truth.copy()
    merged[truth == 42] = 41
    x, y, z = np.argwhere(truth == 42).mean(axis=0).astype(int)
    merged[x - 1 : x + 2, y - 1 : y + 2, z - 8 : z - 2] = Label.IMPLANT  # an implant where 42 would be
    assert np.array_equal(restore_swallowed_teeth(merged, phantom.spacing), merged)



def test_panoramic_maps_only_lose_their_fragments():
    phantom = generate_pano(2001, "small")
    truth = _teeth_only_structures(phantom.labels)
    merged = truth.copy()
    merged[truth == 32] = 31
    assert np.array_equal(tidy_teeth(merged, phantom.spacing), absorb_fragments(merged))


def test_only_numbers_the_model_knows_are_handed_back():
    phantom = generate_cbct(2000, "small")
    truth = _teeth_only_structures(phantom.labels)
    merged = truth.copy()
    merged[truth == 42] = 41
    knows = [f for f in FDI_TEETH if f != 42]  # a model without lateral incisors
    assert np.array_equal(restore_swallowed_teeth(merged, phantom.spacing, knows), merged)
