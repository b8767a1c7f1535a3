"""The CBCT label space (ToothFairy2 ids) and FDI tooth numbering.

Public data trains without remapping because the ids are ToothFairy2's own:
1 lower jawbone, 2 upper jawbone, 3/4 left/right inferior alveolar canal, 5/6 left/
right maxillary sinus, 7 pharynx, 8 bridge, 9 crown, 10 implant, 11-48 teeth by FDI
number. ToothFairy3 adds 103/104 incisive canals, 105 lingual canal and 111-148 pulp
of tooth 11-48. Findings the public sets lack get project ids 200-203.

"Left" and "right" are the patient's.
"""

from __future__ import annotations

from enum import Enum, IntEnum

import numpy as np

# FDI: quadrant 1 upper right, 2 upper left, 3 lower left, 4 lower right;
# position 1 central incisor ... 8 third molar.
QUADRANT_NAMES = {1: "Upper Right", 2: "Upper Left", 3: "Lower Left", 4: "Lower Right"}
POSITION_NAMES = {
    1: "Central Incisor",
    2: "Lateral Incisor",
    3: "Canine",
    4: "First Premolar",
    5: "Second Premolar",
    6: "First Molar",
    7: "Second Molar",
    8: "Third Molar (Wisdom Tooth)",
}
FDI_TEETH: tuple[int, ...] = tuple(q * 10 + p for q in (1, 2, 3, 4) for p in range(1, 9))
UPPER_ARCH: tuple[int, ...] = (18, 17, 16, 15, 14, 13, 12, 11, 21, 22, 23, 24, 25, 26, 27, 28)  # patient's right to left
LOWER_ARCH: tuple[int, ...] = (48, 47, 46, 45, 44, 43, 42, 41, 31, 32, 33, 34, 35, 36, 37, 38)


class ToothType(str, Enum):
    """Tooth class by FDI position digit."""

    INCISOR = "incisor"
    CANINE = "canine"
    PREMOLAR = "premolar"
    MOLAR = "molar"


def tooth_type(fdi: int) -> ToothType:
    position = fdi % 10
    if position <= 2:
        return ToothType.INCISOR
    if position == 3:
        return ToothType.CANINE
    if position <= 5:
        return ToothType.PREMOLAR
    return ToothType.MOLAR


def is_upper(fdi: int) -> bool:
    return fdi // 10 in (1, 2)


def is_patient_left(fdi: int) -> bool:
    return fdi // 10 in (2, 3)


def arch_of(fdi: int) -> tuple[int, ...]:
    """The tooth's jaw as FDI numbers in order along the arch, patient's right to left."""
    return UPPER_ARCH if is_upper(fdi) else LOWER_ARCH


def tooth_name(fdi: int) -> str:
    if fdi not in FDI_TEETH:
        raise ValueError(f"{fdi} is not a permanent-tooth FDI number (11-18, 21-28, 31-38, 41-48)")
    return f"{QUADRANT_NAMES[fdi // 10]} {POSITION_NAMES[fdi % 10]}"


class Label(IntEnum):
    """Label ids of the non-tooth structures; teeth use their FDI number as id."""

    BACKGROUND = 0
    LOWER_JAWBONE = 1
    UPPER_JAWBONE = 2
    LEFT_IAC = 3
    RIGHT_IAC = 4
    LEFT_SINUS = 5
    RIGHT_SINUS = 6
    PHARYNX = 7
    BRIDGE = 8
    CROWN = 9
    IMPLANT = 10
    LEFT_INCISIVE_CANAL = 103
    RIGHT_INCISIVE_CANAL = 104
    LINGUAL_CANAL = 105
    CARIES = 200
    PERIAPICAL_LESION = 201
    RESTORATION = 202
    ROOT_CANAL_FILLING = 203


PULP_OFFSET = 100  # pulp of tooth N has id 100 + N (ToothFairy3)

# A refining model's (``labels.refines``) id for the tooth voxels that touch another
# tooth: it lets inference tell touching teeth apart (odontoscan.models.refine). It is
# a training target only and never appears in an output label map.
TOOTH_CONTACT = 250

_STRUCTURE_NAMES = {
    Label.BACKGROUND: "Background",
    Label.LOWER_JAWBONE: "Lower Jawbone",
    Label.UPPER_JAWBONE: "Upper Jawbone",
    Label.LEFT_IAC: "Left Inferior Alveolar Canal",
    Label.RIGHT_IAC: "Right Inferior Alveolar Canal",
    Label.LEFT_SINUS: "Left Maxillary Sinus",
    Label.RIGHT_SINUS: "Right Maxillary Sinus",
    Label.PHARYNX: "Pharynx",
    Label.BRIDGE: "Bridge",
    Label.CROWN: "Crown",
    Label.IMPLANT: "Implant",
    Label.LEFT_INCISIVE_CANAL: "Left Incisive Canal",
    Label.RIGHT_INCISIVE_CANAL: "Right Incisive Canal",
    Label.LINGUAL_CANAL: "Lingual Canal",
    Label.CARIES: "Caries",
    Label.PERIAPICAL_LESION: "Periapical Lesion",
    Label.RESTORATION: "Restoration",
    Label.ROOT_CANAL_FILLING: "Root Canal Filling",
}


def label_names(include_pulp: bool = False) -> dict[int, str]:
    """Every id of the label space with its name (ToothFairy2 spelling)."""
    names: dict[int, str] = {int(k): v for k, v in _STRUCTURE_NAMES.items()}
    for fdi in FDI_TEETH:
        names[fdi] = tooth_name(fdi)
        if include_pulp:
            names[PULP_OFFSET + fdi] = f"{tooth_name(fdi)} Pulp"
    return dict(sorted(names.items()))


TOOTHFAIRY2_IDS: tuple[int, ...] = tuple(range(0, 11)) + FDI_TEETH
FINDING_IDS: tuple[int, ...] = (
    Label.CARIES,
    Label.PERIAPICAL_LESION,
    Label.RESTORATION,
    Label.ROOT_CANAL_FILLING,
)


def label_colours() -> np.ndarray:
    """Display colours: RGB uint8 ``table[id % 256]`` (background black), the same in every
    picture odontoscan draws (previews, overlays, documentation)."""
    rng = np.random.default_rng(7)
    table = rng.integers(60, 255, size=(256, 3)).astype(np.uint8)
    table[0] = 0
    return table
