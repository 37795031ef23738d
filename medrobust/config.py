"""YAML experiment configs validated into typed settings.

* ``load_config(path, overrides)`` reads YAML with ``yaml.safe_load``, applies ``--set a.b=c``
  overrides (values parsed as YAML: ``true``, ``3``, ``[1, 3]``), and validates into
  the task's config model (:func:`medrobust.tasks.load_config` picks it from ``task:``). Unknown or mistyped keys raise :class:`ConfigError` with the dotted
  path and, for unknown keys, the keys allowed there. A boolean is never a number (``--set
  train.steps=true`` and ``seed: on`` are errors, see :class:`Strict`); ``train.device`` must be a
  device name (``gpu`` fails at load, before anything is written).
* ``augment`` entries are checked against the augmentation registry at load time
  (``augment[0].mixing``), so a typo fails before any training starts.
* ``save_config(cfg, path)`` writes the resolved config (every default filled in) atomically; every
  run directory gets one.
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .io import atomic_write_text

__all__ = [
    "ConfigError",
    "Strict",
    "load_config",
    "apply_overrides",
    "parse_override",
    "save_config",
    "validate",
    "read_yaml",
    "resolve_config_path",
    "packaged_configs",
    "RunBase",
    "ExperimentBase",
    "EvaluateBase",
    "TrainBase",
    "SparseConfig",
    "ConsistencyConfig",
    "AFAConfig",
    "DynTTAConfig",
    "ObjectiveConfig",
]


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the file and the dotted key."""


def _number_kind(ann: Any) -> str | None:
    """``"an integer"``/``"a number"`` for an ``int``/``float`` annotation, else None."""
    return {int: "an integer", float: "a number"}.get(ann)


def _bool_for_number(value: Any, ann: Any) -> str | None:
    """Why ``value`` holds a boolean where ``ann`` expects an integer or a number (None when it does
    not): ``"expected an integer, not a boolean"``, with ``[i]`` for an item of a list or tuple."""
    if get_origin(ann) is Annotated:
        return _bool_for_number(value, get_args(ann)[0])
    if get_origin(ann) in (Union, types.UnionType):
        members = get_args(ann)
        if isinstance(value, bool) and any(m is bool or m is Any for m in members):
            return None  # a boolean is one of the accepted types
        return next((r for m in members if (r := _bool_for_number(value, m)) is not None), None)
    kind = _number_kind(ann)
    if kind is not None:
        return f"expected {kind}, not a boolean" if isinstance(value, bool) else None
    origin, args = get_origin(ann), get_args(ann)
    if origin in (list, tuple, set, frozenset, Sequence) and args and isinstance(value, (list, tuple)):
        fixed = origin is tuple and args[-1] is not Ellipsis  # tuple[int, float] vs tuple[int, ...]
        for i, item in enumerate(value):
            if fixed and i >= len(args):
                break  # pydantic reports the length
            reason = _bool_for_number(item, args[i] if fixed else args[0])
            if reason is not None:
                return f"[{i}]: {reason}"
    return None


def _check_severities(v: list[int]) -> list[int]:
    """The ``severities`` fields: a non-empty list within 1..5, de-duplicated and sorted."""
    if not v or any(s < 1 or s > 5 for s in v):
        raise ValueError(f"expected severities in 1..5, got {v}")
    return sorted(set(v))


class Strict(BaseModel):
    """Base for config sections: unknown keys are errors, and a boolean is never read as a number
    (YAML's ``true``/``on``/``yes`` for an ``int`` or ``float`` field, also inside lists and tuples, is
    an error instead of 1). Otherwise lax: a YAML list fills a tuple field, an integer a float field
    (``lr: 1`` is 1.0), a whole float an integer field (``steps: 100.0``; ``100.5`` is an error), and a
    numeric string a number field (PyYAML reads ``1e-3`` as a string)."""

    model_config = ConfigDict(extra="forbid", strict=False, validate_default=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: Any) -> Any:
        field = cls.model_fields.get(info.field_name) if info.field_name else None
        reason = _bool_for_number(value, field.annotation) if field is not None else None
        if reason is not None:
            raise ValueError(reason)
        return value


# --------------------------------------------------------------------------------------------- sections
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


class DynTTAConfig(Strict):
    """``tta:``, DynTTA test-time enhancement in front of a frozen model (``medrobust tta train``;
    :mod:`medrobust.tta`, METHODS.md section 7). The config's ``data``/``model`` sections describe the
    frozen model's data and architecture (copied from the ``model`` run when one is given).

    ``mode``: ``non_blind`` trains on the ``corruptions`` (probability ``p`` per image, severity drawn
    from ``severities``), ``blind`` on AugMix images (``augmix``: the core's keyword arguments).
    ``num_channels`` is filled in by the task (the frozen model's input channels)."""

    model: str | None = None  # the frozen model's run folder (--model); null: model.weights (a local state_dict)
    checkpoint: str = "best.pt"  # of the frozen run
    mode: Literal["non_blind", "blind"] = "non_blind"
    ops: Literal["all"] | list[str] = "all"  # medrobust.tta.op_names(num_channels) or a subset
    predictor: Literal["small", "resnet18"] = "small"
    predictor_weights: str | None = None  # resnet18: a local backbone state_dict (never downloaded)
    num_channels: int | None = Field(None, ge=1)
    corruptions: Literal["common", "all", "extra"] | list[str] = "common"
    severities: list[int] = [1, 2, 3, 4, 5]
    p: float = Field(15 / 16, ge=0, le=1)
    table: Literal["auto", "imagenet", "cifar"] = "auto"  # corruption parameters; auto: cifar for <= 64 px
    augmix: dict[str, Any] = {}
    val_images: int = Field(512, ge=1)  # validation images (clean + shifted copy) that pick best.pt

    @field_validator("severities")
    @classmethod
    def _severities(cls, v: list[int]) -> list[int]:
        return _check_severities(v)

    @field_validator("augmix")
    @classmethod
    def _augmix(cls, v: dict[str, Any]) -> dict[str, Any]:
        from .augment import validate as validate_core

        if "name" in v:
            raise ValueError("give the AugMix keyword arguments only (width, depth, severity, alpha, ops, all_ops, p)")
        validate_core({"name": "augmix", **v}, where="tta.augmix")
        return v


class SparseConfig(Strict):
    """``train.sparse``: dynamic sparse training (:mod:`medrobust.train.sparse`; METHODS.md section 6).

    ``sparsity`` is the share of zero weights over all conv/linear weights; the mask changes every
    ``update_every`` steps until ``end`` x ``train.steps``, dropping a share cosine-decayed from
    ``drop_fraction``. ``dense_layers``: ``fnmatch`` patterns of weight names kept dense (one that
    matches nothing fails when training starts). ``grow`` (MEST, GraNet): ``random`` or
    ``gradient`` regrowth (default: MEST random, GraNet gradient); ``grad_weight``: MEST's λ in
    ``|w| + λ|g|``; ``initial_density``: where GraNet's gradual pruning starts."""

    method: Literal["set", "rigl", "mest", "granet"]
    sparsity: float = Field(0.1, ge=0, lt=1)
    distribution: Literal["erk", "uniform"] = "erk"
    update_every: int = Field(100, ge=1)
    drop_fraction: float = Field(0.3, ge=0, le=1)
    end: float = Field(0.75, gt=0, le=1)
    dense_first_layer: bool = True
    dense_layers: list[str] = []
    grow: Literal["random", "gradient"] | None = None
    grad_weight: float = Field(1.0, ge=0)
    initial_density: float = Field(0.8, gt=0, le=1)

    @model_validator(mode="after")
    def _grow_fits_method(self) -> "SparseConfig":
        fixed = {"set": "random", "rigl": "gradient"}
        if self.grow is not None and self.method in fixed and self.grow != fixed[self.method]:
            raise ValueError(f"grow: {self.method} always regrows by {fixed[self.method]}; use mest or granet to choose")
        return self


class ObjectiveConfig(Strict):
    """``objective:``, an extra training objective on a distorted copy ``x'`` of every batch
    (:mod:`medrobust.train.objectives`; METHODS.md section 5), for any task.

    ``stability``: ``L_task(x) + weight · stability_loss(f(x), f(x'), kind)``; ``fma``:
    ``L_task(x') + weight · Σ_l d(F_l(x), F_l(x'))`` over ``layers`` (``named_modules()`` names, checked
    when training starts). ``distortion`` is a core entry (checked by the registry), e.g.
    ``{name: combined, members: [...]}``."""

    name: Literal["stability", "fma"]
    weight: float = Field(1.0, ge=0)
    distortion: dict[str, Any] | list[dict[str, Any]]
    layers: list[str] = []  # fma only
    distance: Literal["l2", "l1", "cosine"] = "l2"  # fma only
    kind: Literal["kl", "l2"] = "kl"  # stability only (l2: on embeddings / outputs)
    detach_clean: bool = False  # stop the gradient through the clean branch (default: through both)

    @field_validator("distortion")
    @classmethod
    def _distortion_entry(cls, v: Any) -> Any:
        from .augment import validate as validate_core

        validate_core(v, where="objective.distortion")
        return v

    @model_validator(mode="after")
    def _layers_for_fma(self) -> "ObjectiveConfig":
        if self.name == "fma" and not self.layers:
            raise ValueError("layers: fma needs the names of the layers to compare, e.g. [net.features.2]")
        if self.name == "stability" and self.layers:
            raise ValueError("layers: only fma compares layers; drop them for stability")
        return self


class TrainBase(Strict):
    """The ``train:`` fields that :func:`medrobust.train.loop.fit_config` reads; every task's section
    subclasses it and overrides the defaults that differ."""

    steps: int = Field(600, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)  # AdamW's decoupled decay; SGD's L2 term
    optimizer: Literal["adamw", "sgd"] = "adamw"
    momentum: float = Field(0.9, ge=0, lt=1)  # sgd only
    schedule: Literal["cosine", "constant", "step"] = "cosine"
    step_size: int | None = Field(None, ge=1)  # schedule step: steps between decays of the learning rate
    gamma: float = Field(0.5, gt=0, le=1)  # schedule step: the factor of each decay
    warmup_steps: int = Field(0, ge=0)
    amp: bool = True  # used on CUDA only
    grad_clip: float | None = 1.0
    val_every: int = Field(100, ge=1)
    ckpt_every: int = Field(100, ge=1)
    log_every: int = Field(10, ge=1)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    sparse: SparseConfig | None = None  # dynamic sparse training (medrobust.train.sparse)
    init_from: str | None = None  # finetune from a run folder (its best.pt) or a checkpoint (medrobust.train.finetune)
    freeze: list[str] = []  # module names (named_modules()) whose weights and BN statistics stay fixed

    @model_validator(mode="after")
    def _schedule_keys(self) -> "TrainBase":
        if self.schedule == "step" and self.step_size is None:
            raise ValueError("step_size: schedule step needs the steps between decays (e.g. train.step_size: 1000)")
        if self.schedule != "step" and self.step_size is not None:
            raise ValueError(f"step_size: only schedule step decays in steps; schedule is {self.schedule}")
        return self

    @field_validator("device")
    @classmethod
    def _device_name(cls, v: str) -> str:
        """A name torch can parse (``gpu`` fails here, before any data is written); whether the GPU
        is there is checked when training starts (:func:`medrobust.train.loop.resolve_device`)."""
        import torch

        if v != "auto":
            try:
                torch.device(v)
            except (RuntimeError, ValueError):
                raise ValueError("expected auto, cpu, cuda or cuda:N") from None
        return v


class EvaluateBase(Strict):
    """Fields every task's ``evaluate:`` section shares: the severities (1..5, de-duplicated and
    sorted) and the seed of the on-the-fly corruptions."""

    severities: list[int] = [1, 2, 3, 4, 5]
    seed: int = 0

    @field_validator("severities")
    @classmethod
    def _severities(cls, v: list[int]) -> list[int]:
        return _check_severities(v)


class RunBase(Strict):
    """What every task's config shares: name, task, seed and output directory (``run_dir``).

    ``legacy_names`` maps names the task had in earlier releases to the keys they imply; a config or
    run directory that still says ``task: <old>`` validates as the current task with those keys set,
    and a one-line note on stderr asks to rename it.
    """

    #: earlier task names -> ``{dotted key: value}`` they imply (e.g. ``{"cifar10": {"data.dataset": "cifar10"}}``)
    legacy_names: ClassVar[dict[str, dict[str, Any]]] = {}

    name: str = "experiment"
    task: str
    seed: int = 0
    output_dir: str = "runs"

    @field_validator("name")
    @classmethod
    def _plain_folder_name(cls, v: str) -> str:
        """``name`` is one folder under ``output_dir``: no path separators, not ``.``/``..``, not empty."""
        seps = {"/", "\\", os.sep, *([os.altsep] if os.altsep else [])}
        if not v.strip() or v in (".", "..") or "\0" in v or any(s in v for s in seps):
            raise ValueError("expected a plain folder name under output_dir (no '/' or '\\', not '.' or '..', "
                             "not empty)")
        return v

    @model_validator(mode="before")
    @classmethod
    def _legacy_task_name(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("task") not in cls.legacy_names:
            return data
        old = data["task"]
        data = {**data, "task": cls.model_fields["task"].default}
        keys = cls.legacy_names[old]
        apply_overrides(data, [f"{k}={v}" for k, v in keys.items()])
        if os.environ.get("MEDROBUST_QUIET_LEGACY") != "1":
            extra = "".join(f", {k}: {v}" for k, v in keys.items())
            print(f"medrobust: note: 'task: {old}' is now 'task: {data['task']}'{extra} (read as such; rename it in "
                  "the config)", file=sys.stderr)
        return data

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name


class ExperimentBase(RunBase):
    """A training task's config: :class:`RunBase` plus the augmentation cores (validated by the
    registry) and an optional consistency loss.

    Task configs add ``data``, ``model``, ``train``, ``evaluate`` (and ``afa`` where supported).
    Checks: ``consistency`` needs at least one core in ``augment``; ``consistency`` and ``afa``
    exclude each other (AFA's consistency is ``afa.mode: jsd``).
    """

    augment: list[dict[str, Any]] = []
    consistency: ConsistencyConfig | None = None
    objective: ObjectiveConfig | None = None  # stability training / FMA on a distorted view (any task)
    #: the task trains on label maps (segmentation): cores that move pixels are refused
    label_maps: ClassVar[bool] = False

    @field_validator("augment")
    @classmethod
    def _augment_entries(cls, v: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from .augment import (
            validate,  # the registry validates names and keyword arguments (reads no files)
        )

        for i, entry in enumerate(v):  # label-map tasks (segmentation) refuse cores that move pixels
            validate(entry, where=f"augment[{i}]", label_maps=cls.label_maps)
        return v

    @model_validator(mode="after")
    def _shared_checks(self) -> "ExperimentBase":
        if self.consistency is not None and getattr(self, "afa", None) is not None:
            raise ValueError("use either 'consistency' or 'afa' (AFA's consistency is afa.mode: jsd)")
        if self.consistency is not None and not self.augment:
            raise ValueError("consistency: needs at least one augmentation core in 'augment'")
        if self.objective is not None and (self.consistency is not None or getattr(self, "afa", None) is not None):
            raise ValueError("objective: use it without 'consistency' and 'afa' (it builds its own second view)")
        if type(self).label_maps and self.objective is not None:
            from .augment import validate

            validate(self.objective.distortion, where="objective.distortion", label_maps=True)
        return self



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
            if e["type"] == "value_error" and isinstance(e.get("input"), Mapping):
                # a check across keys (a model validator) names its keys; its input is the whole section
                lines.append(f"'{path}': {msg}" if loc else msg)
            else:
                lines.append(f"'{path}': {msg} (got {e.get('input')!r})")
    return f"{source}: invalid config:\n  " + "\n  ".join(lines)


def validate(data: Mapping[str, Any], *, source: str = "<config>", model: type[BaseModel]) -> Any:
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


#: the recipes shipped with the package (``configs/<task>/...yaml`` in the repository)
PACKAGED_CONFIGS = Path(__file__).resolve().parent / "configs"


def packaged_configs() -> list[str]:
    """Names of the shipped recipes, e.g. ``cardiac/randconv``, ``classification/digits/baseline``."""
    return sorted(str(p.relative_to(PACKAGED_CONFIGS).with_suffix("")) for p in PACKAGED_CONFIGS.rglob("*.yaml"))


#: Recipe folders of earlier releases -> their folder now (``configs/acdc/randconv.yaml`` is
#: ``cardiac/randconv``, ``digits/baseline`` is ``classification/digits/baseline``).
LEGACY_RECIPE_DIRS = {
    "acdc": "cardiac",
    "digits": "classification/digits",
    "cifar10c": "classification/cifar10c",
    "cifar10": "classification/cifar10c",
    "pacs": "classification/pacs",
    "microscopy_blur": "microscopy",
}


def resolve_config_path(path: str | os.PathLike[str]) -> Path:
    """``path`` when it exists, else the shipped recipe it names (``cardiac/randconv``,
    ``configs/cardiac/randconv.yaml``, or an earlier release's folder name such as
    ``configs/acdc/randconv.yaml``), so recipes work from an installed wheel in any directory."""
    p = Path(path)
    if p.exists():
        return p
    name = p.as_posix().removeprefix("configs/").removesuffix(".yaml")
    head, _, rest = name.partition("/")
    if rest and head in LEGACY_RECIPE_DIRS and not (PACKAGED_CONFIGS / f"{name}.yaml").is_file():
        name = f"{LEGACY_RECIPE_DIRS[head]}/{rest}"
    shipped = PACKAGED_CONFIGS / f"{name}.yaml"
    if name and not p.is_absolute() and shipped.is_file():
        return shipped
    raise ConfigError(f"{path}: config file not found (nor a shipped recipe: {', '.join(packaged_configs())})")


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


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
    *,
    model: type[BaseModel],
) -> Any:
    """Load ``path`` (or the defaults when None), apply ``overrides``, validate into ``model``.

    :func:`medrobust.tasks.load_config` picks ``model`` from the file's ``task:`` key.
    """
    path = resolve_config_path(path) if path is not None else None
    data = read_yaml(path) if path is not None else {}
    apply_overrides(data, overrides)
    source = str(path) if path is not None else "<defaults>"
    return validate(data, source=source, model=model)


def save_config(cfg: BaseModel, path: str | os.PathLike[str]) -> None:
    """Write the resolved config (all defaults filled in) as YAML, atomically."""
    data = cfg.model_dump(mode="json")
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))

