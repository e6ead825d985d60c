"""Device profiles: one TOML file per deployment target.

A profile is data, never code: it is parsed with :mod:`tomllib` and every key is checked, so a
typo in a user's file fails loudly instead of silently falling back to a default.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any

from hetero.devices._errors import ProfileError

__all__ = ["Budgets", "DeviceProfile", "PARITY_KEYS", "PRECISIONS", "QUANTIZATIONS", "NAME_PATTERN", "check_name",
           "list_profiles", "load_profile"]

PRECISIONS = ("fp32", "fp16", "int8")
_PROFILE_DIR = Path(__file__).resolve().parent
_TOP_KEYS = {"name", "description", "backend", "precision", "quantization", "threads", "batch_sizes",
             "input", "budgets", "parity"}
#: How an int8 profile quantizes activations: calibrated ranges, or ranges taken per input at run time.
QUANTIZATIONS = ("static", "dynamic")
_INPUT_KEYS = {"channels", "resolution"}
_BUDGET_KEYS = {"macs", "params", "artifact_bytes", "latency_ms"}
#: A profile name: it names folders (``hetero bench --device`` writes OUT/<name>/) and manifests, and
#: it comes from a file a user may have been sent, so it is a plain slug, never a path.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: Parity figures a profile may set its own export threshold for (all "at least" figures in (0, 1]).
PARITY_KEYS = ("cos_min", "cos_mean", "top1_agreement", "top1_item_agreement")


@dataclasses.dataclass(frozen=True)
class Budgets:
    """Limits a model must meet on the device; ``None`` means unconstrained.

    Attributes:
        macs: Multiply-accumulates per image at the device's input shape.
        params: Parameter count.
        artifact_bytes: Size of the exported artifact on disk.
        latency_ms: p50 latency at batch 1 on the device's runtime.
    """

    macs: int | None = None
    params: int | None = None
    artifact_bytes: int | None = None
    latency_ms: float | None = None


@dataclasses.dataclass(frozen=True)
class DeviceProfile:
    """A deployment target: which runtime, at which precision, under which budgets.

    Attributes:
        name: Profile name (the TOML file's stem for built-in profiles).
        description: One line for ``hetero devices``.
        backend: Export backend and runtime name (``onnx``, ``tflite``, ``coreml``, ``tensorrt``).
        precision: ``fp32``, ``fp16`` or ``int8``.
        quantization: For int8: ``static`` (activation ranges calibrated on real images, full
            integer) or ``dynamic`` (int8 weights, activations quantized per input at run time).
        threads: CPU threads the runtime may use.
        batch_sizes: Batch sizes the device serves; the first is the latency batch.
        input_channels: Image channels, or ``None`` for the model's own.
        input_resolution: Square image side, or ``None`` for the model's own.
        budgets: Resource limits.
        parity: The device's own export parity thresholds (``[parity]``), each replacing the
            precision's default for that figure; empty for the defaults. Setting one is a
            deployment decision, recorded in every manifest exported for the device.
        path: Where the profile was read from.
    """

    name: str
    description: str
    backend: str
    precision: str
    quantization: str = "static"
    threads: int = 1
    batch_sizes: tuple[int, ...] = (1,)
    input_channels: int | None = None
    input_resolution: int | None = None
    budgets: Budgets = dataclasses.field(default_factory=Budgets)
    parity: dict[str, float] = dataclasses.field(default_factory=dict)
    path: Path | None = None


def list_profiles() -> list[str]:
    """Names of the built-in profiles, sorted."""
    return sorted(p.stem for p in _PROFILE_DIR.glob("*.toml"))


def load_profile(name_or_path: str | Path) -> DeviceProfile:
    """Load a built-in profile by name, or a user's profile from a ``.toml`` path.

    Raises:
        ProfileError: The file is missing, is not valid TOML, or has an unknown key, backend or
            precision, or a value of the wrong type.
    """
    text = str(name_or_path)
    is_path = isinstance(name_or_path, Path) or text.endswith(".toml") or "/" in text or "\\" in text
    path = Path(text) if is_path else _PROFILE_DIR / f"{text}.toml"
    if not path.is_file():
        if is_path:
            raise ProfileError(f"device profile file {path} does not exist; check the path")
        raise ProfileError(
            f"unknown device {text!r}; choose one of {', '.join(list_profiles())} "
            "or pass a path to your own .toml profile"
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProfileError(f"device profile {path} is not valid TOML ({exc}); fix the file") from None
    profile = _parse(data, path)
    if not is_path and profile.name != text:
        raise ProfileError(f"device profile {path} has name {profile.name!r}; rename it to {text!r}")
    return profile


def _parse(data: dict[str, Any], path: Path) -> DeviceProfile:
    # Imported here because the runtime registry is the single list of backend names.
    from hetero.devices.runtimes import list_runtimes

    where = f"device profile {path}"
    _check_keys(data, _TOP_KEYS, where)
    for key in ("name", "backend", "precision"):
        if key not in data:
            raise ProfileError(f"{where} lacks the required key {key!r}; add it")
    name = check_name(_typed(data, "name", str, where), where)
    backend = _typed(data, "backend", str, where)
    if backend not in list_runtimes():
        raise ProfileError(
            f"{where}: unknown backend {backend!r}; use one of {', '.join(list_runtimes())}"
        )
    precision = _typed(data, "precision", str, where)
    if precision not in PRECISIONS:
        raise ProfileError(f"{where}: bad precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    quantization = _typed(data, "quantization", str, where, default="static")
    if quantization not in QUANTIZATIONS:
        raise ProfileError(f"{where}: bad quantization {quantization!r}; use one of {', '.join(QUANTIZATIONS)}")
    if "quantization" in data and precision != "int8":
        raise ProfileError(f"{where}: 'quantization' applies to int8 only, but precision is {precision!r}; remove it")
    batch_sizes = data.get("batch_sizes", [1])
    if (not isinstance(batch_sizes, list) or not batch_sizes
            or not all(_is_int(b) and b > 0 for b in batch_sizes)):
        raise ProfileError(f"{where}: 'batch_sizes' must be a non-empty list of positive integers")
    inputs = _table(data, "input", _INPUT_KEYS, where)
    budgets = _table(data, "budgets", _BUDGET_KEYS, where)
    parity = _table(data, "parity", set(PARITY_KEYS), where)
    for key, value in parity.items():
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 1):
            raise ProfileError(f"{where} [parity]: {key!r} must be a number in (0, 1], got {value!r}")
    return DeviceProfile(
        name=name,
        description=_typed(data, "description", str, where, default=""),
        backend=backend,
        precision=precision,
        quantization=quantization,
        threads=_positive(data, "threads", where, default=1),
        batch_sizes=tuple(batch_sizes),
        input_channels=_positive(inputs, "channels", f"{where} [input]"),
        input_resolution=_positive(inputs, "resolution", f"{where} [input]"),
        budgets=Budgets(
            macs=_positive(budgets, "macs", f"{where} [budgets]"),
            params=_positive(budgets, "params", f"{where} [budgets]"),
            artifact_bytes=_positive(budgets, "artifact_bytes", f"{where} [budgets]"),
            latency_ms=_positive(budgets, "latency_ms", f"{where} [budgets]", number=float),
        ),
        parity={key: float(value) for key, value in parity.items()},
        path=path,
    )


def check_name(name: str, where: str = "device profile") -> str:
    """``name`` if it is a safe profile name (see :data:`NAME_PATTERN`).

    Raises:
        ProfileError: ``name`` holds a path separator, ``..``, a leading dot or another character
            that could make it a path rather than a name.
    """
    if not NAME_PATTERN.fullmatch(name):
        raise ProfileError(
            f"{where}: name {name!r} is not a plain device name; use letters, digits, '.', '_' and '-' "
            "(starting with a letter or digit, at most 64 characters), e.g. name = \"my-board\""
        )
    return name


def _check_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ProfileError(
            f"{where}: unknown key {unknown[0]!r}; allowed keys are {', '.join(sorted(allowed))}"
        )


def _table(data: dict[str, Any], key: str, allowed: set[str], where: str) -> dict[str, Any]:
    table = data.get(key, {})
    if not isinstance(table, dict):
        raise ProfileError(f"{where}: {key!r} must be a table ([{key}])")
    _check_keys(table, allowed, f"{where} [{key}]")
    return table


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _typed(data: dict[str, Any], key: str, kind: type, where: str, default: Any = None) -> Any:
    value = data.get(key, default)
    if not isinstance(value, kind):
        raise ProfileError(f"{where}: {key!r} must be a {kind.__name__}, got {value!r}")
    return value


def _positive(data: dict[str, Any], key: str, where: str, default: Any = None,
              number: type = int) -> Any:
    value = data.get(key, default)
    if value is None:
        return None
    ok = _is_int(value) or (number is float and isinstance(value, float))
    if not ok or value <= 0:
        kind = "number" if number is float else "integer"
        raise ProfileError(f"{where}: {key!r} must be a positive {kind}, got {value!r}")
    return number(value)
