"""Label ids -> model channels: the one mapping training, its tests and evaluation share.

A config's :class:`~odontoscan.training.config.LabelConfig` names the DESIGN.md id each
output channel predicts (``classes``) and folds other ids onto them (``merge``, e.g.
pulp 111 -> tooth 11). Ids in neither become background (channel 0).

A refining model's tooth contact class (``TOOTH_CONTACT``) is marked here from the
ground truth: every tooth voxel with a voxel of another tooth among its 26 neighbours
(a band two voxels wide where teeth touch), on the grid the model trains on.

Left/right mirroring (for the left-right flip augmentation) is also defined here in
terms of ids: FDI quadrant 1 <-> 2 and 3 <-> 4, canals 3 <-> 4, sinuses 5 <-> 6,
incisive canals 103 <-> 104, pulp 1xx like its tooth.
"""

from __future__ import annotations

import numpy as np

from scipy import ndimage

from odontoscan.datasets.labels import FDI_TEETH, PULP_OFFSET, TOOTH_CONTACT, Label
from odontoscan.training.config import LabelConfig

_MIRRORED_STRUCTURES = {
    Label.LEFT_IAC: Label.RIGHT_IAC,
    Label.LEFT_SINUS: Label.RIGHT_SINUS,
    Label.LEFT_INCISIVE_CANAL: Label.RIGHT_INCISIVE_CANAL,
}
_MIRRORED_QUADRANTS = {1: 2, 2: 1, 3: 4, 4: 3}


def channel_table(labels: LabelConfig, max_id: int) -> np.ndarray:
    """Lookup table ``table[source_id] -> channel`` (uint8) for ids 0..max_id."""
    table = np.zeros(max(max_id, max(labels.classes), max(labels.merge, default=0)) + 1, dtype=np.uint8)
    channel_of = {class_id: channel for channel, class_id in enumerate(labels.classes)}
    for source_id, target in labels.merge.items():
        table[source_id] = channel_of[target]
    for class_id, channel in channel_of.items():
        table[class_id] = channel
    return table


def to_channels(label: np.ndarray, labels: LabelConfig) -> np.ndarray:
    """Label map in DESIGN.md ids -> channel indices 0..C-1 (uint8, same shape)."""
    label = np.asarray(label)
    if label.size and int(label.min()) < 0:
        raise ValueError("label maps must not hold negative ids")
    table = channel_table(labels, int(label.max()) if label.size else 0)
    channels = table[label.astype(np.intp, copy=False)]
    if TOOTH_CONTACT in labels.classes:
        channels[tooth_contacts(label)] = labels.classes.index(TOOTH_CONTACT)
    return channels


def tooth_contacts(label: np.ndarray) -> np.ndarray:
    """Mask of the tooth voxels (pulp counts as its tooth) with a voxel of another tooth
    among their 26 neighbours."""
    ids = np.asarray(label).astype(np.int32)
    ids = np.where(np.isin(ids, [PULP_OFFSET + t for t in FDI_TEETH]), ids - PULP_OFFSET, ids)
    teeth = np.isin(ids, FDI_TEETH)
    if not teeth.any():
        return teeth
    ids = np.where(teeth, ids, 0).astype(np.uint8)
    highest = ndimage.maximum_filter(ids, size=3)
    lowest = ndimage.minimum_filter(np.where(teeth, ids, 255).astype(np.uint8), size=3)
    return teeth & ((highest != ids) | (lowest != ids))


def mirrored_id(label_id: int) -> int:
    """The id of the same structure on the patient's other side (itself if unpaired)."""
    for left, right in _MIRRORED_STRUCTURES.items():
        if label_id == left:
            return int(right)
        if label_id == right:
            return int(left)
    offset = PULP_OFFSET if PULP_OFFSET + 11 <= label_id <= PULP_OFFSET + 48 else 0
    tooth = label_id - offset
    if 11 <= tooth <= 48 and tooth // 10 in _MIRRORED_QUADRANTS and 1 <= tooth % 10 <= 8:
        return offset + _MIRRORED_QUADRANTS[tooth // 10] * 10 + tooth % 10
    return label_id


def mirrored_channels(labels: LabelConfig) -> list[int]:
    """``perm[c]`` = channel of the mirror of channel ``c``'s class (itself when the mirror is no class)."""
    channel_of = {class_id: channel for channel, class_id in enumerate(labels.classes)}
    return [channel_of.get(mirrored_id(class_id), channel) for channel, class_id in enumerate(labels.classes)]
