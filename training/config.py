"""Training configuration: one YAML file per task, validated by pydantic.

A config names the task (3D CBCT or 2D radiograph), where the data come from
(phantom seeds, a ToothFairy2/DENTEX folder, NIfTI pairs), the label set and its
mapping to the DESIGN.md ids, the network, preprocessing (shared with inference),
patches, augmentation, optimiser, schedule and seed. Unknown keys are errors, so a
typo never silently falls back to a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from odontoscan.datasets.errors import ConfigError, describe_validation_error
from odontoscan.datasets.labels import PULP_OFFSET, TOOTH_CONTACT
from odontoscan.models.preprocess import PreprocessConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


class SeedRange(_Strict):
    """Phantom seeds ``start`` .. ``stop - 1``."""

    start: int = Field(ge=0)
    stop: int

    @model_validator(mode="after")
    def _non_empty(self) -> SeedRange:
        if self.stop <= self.start:
            raise ValueError(f"stop ({self.stop}) must be greater than start ({self.start})")
        return self

    @property
    def seeds(self) -> list[int]:
        return list(range(self.start, self.stop))


class PhantomData(_Strict):
    """Phantoms generated on the fly (cached on disk); train and val seeds must not overlap."""

    source: Literal["phantom"] = "phantom"
    train_seeds: SeedRange
    val_seeds: SeedRange
    size: Literal["small", "full"] = "small"
    # Extra training phantoms generated at full size (0.2-0.4 mm voxels), so a model
    # working finer than the small phantoms' 0.8 mm also sees sharp scans.
    full_size_seeds: SeedRange | None = None

    @model_validator(mode="after")
    def _disjoint(self) -> PhantomData:
        train = set(self.train_seeds.seeds) | set(self.full_size_seeds.seeds if self.full_size_seeds else [])
        overlap = train & set(self.val_seeds.seeds)
        if overlap:
            raise ValueError(f"train and val seeds overlap ({min(overlap)}..{max(overlap)}); validation must use unseen phantoms")
        return self


class FolderData(_Strict):
    """A dataset folder in a published layout; ``path`` may be given with ``--data`` instead."""

    source: Literal["toothfairy2", "dentex", "nifti_pairs"]
    path: Path | None = None
    val_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    split_seed: int = 0


DataConfig = Annotated[Union[PhantomData, FolderData], Field(discriminator="source")]


class LabelConfig(_Strict):
    """Model output channels and how source ids map onto them.

    ``classes[c]`` is the DESIGN.md id predicted by channel ``c`` (``classes[0]`` must
    be 0, background). ``merge`` maps source ids onto one of ``classes`` (e.g. pulp
    111 -> tooth 11); source ids in neither become background.
    """

    classes: list[int]
    merge: dict[int, int] = Field(default_factory=dict)
    # "fdi": one channel per FDI number. "midline": teeth are learnt by type only
    # (right-side ids 11-18 / 41-48 for both sides; left ids are folded onto them
    # automatically) and inference gives left teeth their numbers from the midline
    # (odontoscan.models.teeth).
    tooth_sides: Literal["fdi", "midline"] = "fdi"
    # True for the fine model of a coarse-to-fine pair (odontoscan.models.refine): it
    # learns every tooth (and its pulp) as tooth 11 and both canals as canal 3; the
    # coarse model's label map gives each tooth its number and each canal its side.
    refines: bool = False
    # A refining model may also learn TOOTH_CONTACT (250): tooth voxels next to another
    # tooth, marked from the ground truth on the model's grid (training.labels.to_channels).

    @model_validator(mode="after")
    def _consistent(self) -> LabelConfig:
        if not self.classes or self.classes[0] != 0:
            raise ValueError("classes must start with 0 (background)")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("classes must not repeat an id")
        if self.refines:
            if self.tooth_sides != "fdi":
                raise ValueError("a refining model learns all teeth as one class; leave tooth_sides at 'fdi'")
            others = sorted(k for k in self.classes if 12 <= k <= 48 or k == 4)
            if others:
                raise ValueError(f"a refining model learns teeth as 11 and canals as 3 only; remove ids {others} from classes")
            if TOOTH_CONTACT in self.classes and 11 not in self.classes:
                raise ValueError(f"the tooth contact class {TOOTH_CONTACT} needs the tooth class 11")
            for source, target in refine_folds(self.classes).items():
                self.merge.setdefault(source, target)
        elif TOOTH_CONTACT in self.classes:
            raise ValueError(f"the tooth contact class {TOOTH_CONTACT} is for a refining model only (refines: true)")
        if self.tooth_sides == "midline":
            left = sorted(k for k in self.classes if 21 <= k <= 38)
            if left:
                raise ValueError(f"tooth_sides 'midline' learns teeth as their right-side twins; remove left ids {left} from classes")
            for source, target in side_folds(self.classes).items():
                self.merge.setdefault(source, target)
        unknown = sorted(set(self.merge.values()) - set(self.classes))
        if unknown:
            raise ValueError(f"merge targets {unknown} are not in classes")
        return self


def side_folds(classes: list[int]) -> dict[int, int]:
    """Left teeth (21-28, 31-38) and their pulp (121-138) -> the right-side twin class in
    ``classes`` (21 -> 11, 136 -> 46), for ``tooth_sides="midline"``."""
    folds: dict[int, int] = {}
    for twin in (k for k in classes if k // 10 in (1, 4) and 1 <= k % 10 <= 8):
        left = {1: 2, 4: 3}[twin // 10] * 10 + twin % 10
        folds[left] = twin
        folds[PULP_OFFSET + left] = twin
    return folds


def refine_folds(classes: list[int]) -> dict[int, int]:
    """Every FDI tooth id and its pulp -> 11, the right canal 4 -> 3 (for the classes of
    these present in ``classes``), for ``refines=True``."""
    folds: dict[int, int] = {}
    if 11 in classes:
        for tooth in (q * 10 + n for q in (1, 2, 3, 4) for n in range(1, 9)):
            if tooth != 11:
                folds[tooth] = 11
            folds[PULP_OFFSET + tooth] = 11
    if 3 in classes:
        folds[4] = 3
    return folds


class NetworkConfig(_Strict):
    """A MONAI network by name with its constructor arguments (spatial_dims, in/out channels are filled in)."""

    name: Literal["UNet", "SegResNet", "DynUNet"]
    kwargs: dict[str, Any] = Field(default_factory=dict)


class AugmentConfig(_Strict):
    rotate_deg: float = Field(10.0, ge=0, le=45)
    scale: float = Field(0.1, ge=0, le=0.5)
    intensity_shift: float = Field(0.05, ge=0, le=0.5)
    noise_std: float = Field(0.02, ge=0, le=0.5)
    flip_left_right: bool = False  # mirrors the image and swaps left/right label ids


class SamplingConfig(_Strict):
    """Where training patches are centred.

    "foreground": 3 of 4 patches on a labelled voxel, 1 anywhere (MONAI
    RandCropByPosNegLabeld). "classes": on a voxel of a class drawn with the weights
    ``class_weights`` (label id -> weight; ids not named weigh 1, background 0 unless
    named), so thin or rare structures (canals, findings) are seen often enough
    (MONAI RandCropByLabelClassesd).
    """

    kind: Literal["foreground", "classes"] = "foreground"
    class_weights: dict[int, float] = Field(default_factory=dict)


class LossConfig(_Strict):
    """The DiceCE loss. ``class_weights`` (label id -> weight; ids not named weigh 1)
    rescale each class in both terms (MONAI DiceCELoss ``weight``), so a class of a few
    dozen voxels per scan (caries) is not drowned by the large ones."""

    class_weights: dict[int, float] = Field(default_factory=dict)

    @field_validator("class_weights")
    @classmethod
    def _positive(cls, v: dict[int, float]) -> dict[int, float]:
        if any(w <= 0 for w in v.values()):
            raise ValueError("loss class weights must be positive")
        return v

    def weights(self, classes: list[int]) -> list[float]:
        """One weight per channel of ``classes``."""
        return [float(self.class_weights.get(k, 1.0)) for k in classes]


class OptimizerConfig(_Strict):
    name: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-5, ge=0)


class ScheduleConfig(_Strict):
    name: Literal["cosine", "constant", "poly"] = "cosine"
    warmup_epochs: int = Field(0, ge=0)


class TrainConfig(_Strict):
    """Everything one training run needs; saved resolved with the run."""

    task: Literal["cbct", "radiograph"]
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    data: DataConfig
    labels: LabelConfig
    preprocess: PreprocessConfig
    network: NetworkConfig
    patch_size: list[int]
    batch_size: int = Field(2, ge=1)
    samples_per_case: int = Field(2, ge=1)
    epochs: int = Field(ge=1)
    val_interval: int = Field(1, ge=1)
    augmentation: AugmentConfig = Field(default_factory=AugmentConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    seed: int = 0
    amp: Literal["auto", "on", "off"] = "auto"

    @property
    def spatial_dims(self) -> int:
        return 3 if self.task == "cbct" else 2

    @field_validator("patch_size")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(n < 8 for n in v):
            raise ValueError("patch_size entries must be at least 8")
        return v

    @model_validator(mode="after")
    def _dimensions_agree(self) -> TrainConfig:
        if len(self.patch_size) != self.spatial_dims:
            raise ValueError(f"patch_size needs {self.spatial_dims} values for task {self.task}")
        spacing = self.preprocess.spacing_mm
        if spacing is not None and len(spacing) != self.spatial_dims:
            raise ValueError(f"preprocess.spacing_mm needs {self.spatial_dims} values for task {self.task}")
        for key, weights in (("sampling", self.sampling.class_weights), ("loss", self.loss.class_weights)):
            unknown = sorted(set(weights) - set(self.labels.classes))
            if unknown:
                raise ValueError(f"{key}.class_weights names ids {unknown} that are not in labels.classes")
        return self


def parse_config(document: dict, source: str = "<dict>") -> TrainConfig:
    """Validate a config mapping; ConfigError lists every problem with its key path."""
    try:
        return TrainConfig.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, "training config", source)) from None


def load_config(path: str | Path) -> TrainConfig:
    """Read and validate a YAML training config."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Training config '{path}' does not exist; see configs/ for examples.")
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"Training config '{path.name}' is not valid YAML: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"Training config '{path.name}' must be a mapping of keys to values.")
    return parse_config(document, f"'{path.name}'")
