"""YAML experiment configs validated into typed settings.

* ``load_config(path, overrides)`` reads YAML with ``yaml.safe_load``, applies ``--set a.b=c``
  overrides (values parsed as YAML: ``true``, ``3``, ``[1, 3]``), and validates into
  :class:`ExperimentConfig`. Unknown or mistyped keys raise :class:`ConfigError` with the dotted
  path and, for unknown keys, the keys allowed there.
* ``augment`` entries are checked against the augmentation registry at load time
  (``augment[0].mixing``), so a typo fails before any training starts.
* ``save_config(cfg, path)`` writes the resolved config (every default filled in) atomically; every
  run directory gets one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .io import atomic_write_text

__all__ = [
    "ConfigError",
    "Strict",
    "ExperimentConfig",
    "load_config",
    "apply_overrides",
    "parse_override",
    "save_config",
    "validate",
    "TASK_CONFIGS",
    "register_task_config",
]


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the file and the dotted key."""


class Strict(BaseModel):
    """Base for config sections: unknown keys are errors, no silent coercion of strings to numbers."""

    model_config = ConfigDict(extra="forbid", strict=False, validate_default=True)


# --------------------------------------------------------------------------------------------- sections
class SyntheticConfig(Strict):
    """The embedded default cohort, written in the ACDC layout when ``data.root`` is null."""

    n_train: int = Field(12, ge=2)
    n_test: int = Field(4, ge=1)
    size: tuple[int, int] = (96, 96)
    n_slices: int = Field(6, ge=1)
    seed: int = 0


class DataConfig(Strict):
    root: str | None = None  # null: the embedded synthetic cohort
    shifted_root: str | None = None  # a second cohort from another domain (null: synthetic shifted)
    mode: Literal["2d", "3d"] = "2d"
    spatial_size: tuple[int, ...] = (96, 96)
    pixel_spacing: float | None = None  # in-plane resampling target in mm (null: keep)
    split: tuple[float, float, float] = (0.7, 0.1, 0.2)
    split_seed: int = 0
    num_workers: int = Field(0, ge=0)
    synthetic: SyntheticConfig = SyntheticConfig()

    @field_validator("split")
    @classmethod
    def _split_sums(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(f < 0 for f in v) or abs(sum(v) - 1.0) > 1e-6:
            raise ValueError(f"train/val/test fractions must be >= 0 and sum to 1, got {list(v)}")
        return v


class ModelConfig(Strict):
    name: Literal["monai_unet", "smp_unet", "smp_deeplabv3plus"] = "monai_unet"
    channels: tuple[int, ...] = (16, 32, 64, 128)  # monai_unet
    strides: tuple[int, ...] = (2, 2, 2)  # monai_unet
    num_res_units: int = 1  # monai_unet
    dropout: float = 0.0
    encoder_name: str = "resnet18"  # smp models
    weights: str | None = None  # local state_dict path (never downloaded)


class ConsistencyConfig(Strict):
    name: Literal["kl_to_mean", "jsd"] = "kl_to_mean"
    weight: float = Field(10.0, ge=0)
    views: int = Field(3, ge=2)  # view 1 gets the task loss; all views are drawn from the clean input
    clean_first_view: bool = False  # True: view 1 is the clean image (AugMix style)


class AFAConfig(Strict):
    """Auxiliary Fourier-basis augmentation (see :mod:`medrobust.train.afa`)."""

    mode: Literal["dual", "jsd"] = "dual"
    jsd_weight: float = Field(10.0, ge=0)
    steps: int = Field(0, ge=0)  # adversarial ascent steps on the strengths (0: released behaviour)
    step_size: float = Field(1.0, gt=0)
    min_strength: float = Field(0.0, ge=0)
    mean_strength: float = Field(10.0, gt=0)
    max_frequency: int | None = None
    dual_bn: bool = True  # auxiliary batch-norm statistics for AFA images (models with batch norm)


class TrainBase(Strict):
    """The ``train:`` fields that :func:`medrobust.train.loop.fit_config` reads; every task's section
    subclasses it and overrides the defaults that differ."""

    steps: int = Field(600, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)  # AdamW
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_steps: int = Field(0, ge=0)
    amp: bool = True  # used on CUDA only
    grad_clip: float | None = 1.0
    val_every: int = Field(100, ge=1)
    ckpt_every: int = Field(100, ge=1)
    log_every: int = Field(10, ge=1)
    device: str = "auto"  # auto | cpu | cuda | cuda:N


class TrainConfig(TrainBase):
    lr: float = Field(2e-3, gt=0)
    ce_weight: float = 1.0
    dice_weight: float = 1.0


class EvaluateBase(Strict):
    """Fields every task's ``evaluate:`` section shares: the severities (1..5, de-duplicated and
    sorted) and the seed of the on-the-fly corruptions."""

    severities: list[int] = [1, 2, 3, 4, 5]
    seed: int = 0

    @field_validator("severities")
    @classmethod
    def _severities(cls, v: list[int]) -> list[int]:
        if not v or any(s < 1 or s > 5 for s in v):
            raise ValueError(f"expected severities in 1..5, got {v}")
        return sorted(set(v))


class ExperimentBase(Strict):
    """What every training task's config shares: name, task, seed, output directory, the
    augmentation cores (validated by the registry) and an optional consistency loss.

    Task configs add ``data``, ``model``, ``train``, ``evaluate`` (and ``afa`` where supported).
    Checks: ``consistency`` needs at least one core in ``augment``; ``consistency`` and ``afa``
    exclude each other (AFA's consistency is ``afa.mode: jsd``).
    """

    name: str = "experiment"
    task: str
    seed: int = 0
    output_dir: str = "runs"
    augment: list[dict[str, Any]] = []
    consistency: ConsistencyConfig | None = None

    @field_validator("augment")
    @classmethod
    def _augment_entries(cls, v: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from .augment import build  # the registry validates names and keyword arguments

        for i, entry in enumerate(v):
            build(entry, where=f"augment[{i}]")
        return v

    @model_validator(mode="after")
    def _shared_checks(self) -> "ExperimentBase":
        if self.consistency is not None and getattr(self, "afa", None) is not None:
            raise ValueError("use either 'consistency' or 'afa' (AFA's consistency is afa.mode: jsd)")
        if self.consistency is not None and not self.augment:
            raise ValueError("consistency: needs at least one augmentation core in 'augment'")
        return self

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name


class EvaluateConfig(EvaluateBase):
    corruptions: Literal["all"] | list[str] = "all"
    hd95: bool = True
    shifted: bool = True
    batch_size: int = Field(16, ge=1)
    sw_batch_size: int = Field(4, ge=1)  # sliding window inference (3d mode)
    grid_cases: int = Field(3, ge=0)  # rows of the image/prediction figure


class ExperimentConfig(ExperimentBase):
    """``task: acdc`` experiment config (``configs/acdc/*.yaml``)."""

    task: Literal["acdc"] = "acdc"
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    afa: AFAConfig | None = None
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()


# ------------------------------------------------------------------------------------------ loading
def _allowed_keys(model: type[BaseModel], loc: Sequence[Any]) -> list[str] | None:
    """Walk ``loc`` through nested models and return the field names allowed at the parent."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        ann = field.annotation
        # unwrap Optional[Model] / Model | None
        for arg in getattr(ann, "__args__", ()) or ():
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                ann = arg
        current = ann
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return None


def _dotted(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<root>"


def _format_errors(err: ValidationError, model: type[BaseModel], source: str) -> str:
    lines = []
    for e in err.errors():
        loc = [p for p in e["loc"] if not (isinstance(p, str) and p.startswith(("function-", "literal[")))]
        path = _dotted(loc)
        if e["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, loc)
            hint = f"; allowed keys: {', '.join(allowed)}" if allowed else ""
            lines.append(f"unknown key '{path}'{hint}")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"'{path}': {msg} (got {e.get('input')!r})")
    return f"{source}: invalid config:\n  " + "\n  ".join(lines)


def validate(data: Mapping[str, Any], *, source: str = "<config>", model: type[BaseModel] = ExperimentConfig) -> Any:
    """Validate a plain dict into ``model``, raising :class:`ConfigError` with dotted paths."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return model.model_validate(dict(data))
    except ValidationError as err:
        raise ConfigError(_format_errors(err, model, source)) from None
    except ValueError as err:  # from nested validators that raise outside pydantic's wrapping
        raise ConfigError(f"{source}: {err}") from None


def parse_override(text: str) -> tuple[list[str | int], Any]:
    """``"a.b.0.c=value"`` -> (["a", "b", 0, "c"], parsed value); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. train.steps=100")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise ConfigError(f"--set {text!r}: empty key segment")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f"--set {text!r}: value is not valid YAML ({err})") from None
    return [int(p) if p.isdigit() else p for p in key.split(".")], value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``--set`` overrides to a config dict in place (creating nested mappings) and return it."""
    for text in overrides:
        path, value = parse_override(text)
        node: Any = data
        for i, part in enumerate(path[:-1]):
            nxt = path[i + 1]
            if isinstance(part, int):
                if not isinstance(node, list) or part >= len(node):
                    raise ConfigError(f"--set {text!r}: '{_dotted(path[: i + 1])}' is not an existing list index")
                node = node[part]
                continue
            if not isinstance(node, dict):
                raise ConfigError(f"--set {text!r}: '{_dotted(path[:i])}' is not a mapping")
            if node.get(part) is None:
                node[part] = [] if isinstance(nxt, int) else {}
            node = node[part]
        last = path[-1]
        if isinstance(last, int):
            if not isinstance(node, list) or last > len(node):
                raise ConfigError(f"--set {text!r}: list index {last} out of range")
            if last == len(node):
                node.append(value)
            else:
                node[last] = value
        else:
            if not isinstance(node, dict):
                raise ConfigError(f"--set {text!r}: '{_dotted(path[:-1])}' is not a mapping")
            node[last] = value
    return data


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML mapping with ``safe_load``; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


#: task name -> config model; task families register theirs with :func:`register_task_config`
TASK_CONFIGS: dict[str, type[BaseModel]] = {}


def register_task_config(task: str, model: type[BaseModel]) -> None:
    """Make ``task: <task>`` in a YAML file validate into ``model`` (a :class:`Strict` subclass)."""
    TASK_CONFIGS[task] = model


def _model_for(data: Mapping[str, Any], source: str) -> type[BaseModel]:
    task = data.get("task", "acdc")
    if task not in TASK_CONFIGS:
        import importlib

        from .runners import CONFIG_MODULES

        if task in CONFIG_MODULES:  # the task family registers its config model on import
            importlib.import_module(CONFIG_MODULES[task])
    if task not in TASK_CONFIGS:
        from .runners import CONFIG_MODULES

        raise ConfigError(f"{source}: unknown task {task!r}; choose one of {sorted(set(TASK_CONFIGS) | set(CONFIG_MODULES))}")
    return TASK_CONFIGS[task]


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
    *,
    model: type[BaseModel] | None = None,
) -> Any:
    """Load ``path`` (or the defaults when None), apply ``overrides``, validate.

    The config model is ``model`` when given, else the one registered for the file's ``task`` key
    (default ``acdc``: :class:`ExperimentConfig`).
    """
    data = read_yaml(path) if path is not None else {}
    apply_overrides(data, overrides)
    source = str(path) if path is not None else "<defaults>"
    return validate(data, source=source, model=model or _model_for(data, source))


def save_config(cfg: BaseModel, path: str | os.PathLike[str]) -> None:
    """Write the resolved config (all defaults filled in) as YAML, atomically."""
    data = cfg.model_dump(mode="json")
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))


register_task_config("acdc", ExperimentConfig)
