"""Helpers the sub-commands share: loading data and models from flags, printing tables."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hetero._table import print_table
from hetero.data import Split, load_split
from hetero.devices._registry import Registry
from hetero.errors import UserError

__all__ = [
    "COMMANDS",
    "EXIT_GATE",
    "Outcome",
    "add_data_options",
    "add_result_options",
    "add_train_options",
    "check_output_dir",
    "finite_float",
    "gate_failures",
    "json_ready",
    "print_table",
    "split_from_args",
    "train_config_from_args",
]

#: Exit code of a run whose result fails its quality gate under ``--strict`` (DESIGN.md).
EXIT_GATE = 3

#: The sub-commands, by name: each command module registers its ``register(subparsers, common)``,
#: which adds the command's parser (hetero.cli.build_parser calls them in its order).
COMMANDS: Registry[Callable[[Any, argparse.ArgumentParser], None]] = Registry("command", UserError)


def add_data_options(parser: argparse.ArgumentParser, required: bool = True, default_help: str = "") -> None:
    """``--data`` and ``--protocol``; ``default_help`` says what an optional ``--data`` falls back to."""
    parser.add_argument(
        "--data",
        required=required,
        metavar="SPEC",
        help="digits | fashion-mnist[:DIR] | omniglot:DIR | imagefolder:DIR | npz:FILE" + (f" ({default_help})" if default_help else ""),
    )
    parser.add_argument(
        "--protocol",
        choices=("open", "closed"),
        default=None,
        help="open-set (disjoint train/test classes) or closed-set; default: open for 100+ classes",
    )


def split_from_args(args: argparse.Namespace, size: int | None = None) -> Split:
    """The split of ``--data`` (loaded at ``size`` px where larger), announced in one line."""
    split = load_split(args.data, protocol=args.protocol, seed=args.seed, size=size)
    print(split.line(), flush=True)
    return split


def add_train_options(parser: argparse.ArgumentParser, defaults) -> None:
    """One flag per :class:`hetero.training.TrainConfig` field, defaulting to ``defaults``."""
    from dataclasses import fields

    group = parser.add_argument_group("training (loss weights: 0 switches a term off)")
    helps = {
        "metric": "weight of the model's own cosine-classifier loss",
        "influence": "weight of BCT's influence loss through the cloud's frozen classifier (or prototypes)",
        "alignment": "weight of the cosine alignment of edge and cloud embeddings of the same image",
        "contrastive": "weight of the cross-model InfoNCE loss",
        "focal": "weight of focal distillation (distil more where the cloud model is right)",
        "focal_head": "focal distillation through the cloud's classifier (reference) or the model's own head (own)",
    }
    for f in fields(defaults):
        value = getattr(defaults, f.name)
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=value, help=f"(default {value})")
        else:
            group.add_argument(flag, type=finite_float if isinstance(value, float) else type(value), default=value, help=f"{helps.get(f.name, '')} (default {value})".strip())


def train_config_from_args(args: argparse.Namespace, defaults):
    from dataclasses import fields

    from hetero.training import TrainConfig

    config = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(defaults)})
    if config.epochs < 1 or config.batch_size < 2 or config.lr <= 0:
        raise UserError("--epochs must be >= 1, --batch-size >= 2 and --lr > 0")
    return config


def existing_dir(path: str, what: str) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise UserError(f"{what} {p} is not a folder")
    return p


def finite_float(text: str) -> float:
    """The ``type`` of every float flag: a finite number; ``nan`` and ``inf`` are refused.

    ``float()`` accepts ``nan`` and ``inf``, which would reach the optimiser (or a threshold) and
    fail deep inside it with a traceback; here they fail as the flag's one-line parse error.
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number; pass an ordinary value such as 0.5")
    return value


def check_output_dir(path: str | os.PathLike[str], flag: str = "--out") -> Path:
    """Refuse an output folder that cannot be one, before any work starts (nothing is created).

    Args:
        path: the folder a command will write to (it may not exist yet).
        flag: the flag that named it, for the message.

    Raises:
        UserError: ``path`` is an existing file, lies under a file, or cannot be written.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"{flag} {p} is an existing file, not a folder; pass a folder path")
    existing = p
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise UserError(f"{flag} {p} lies under the file {existing}, where no folder can be made; pass another path")
    if not _writable(existing):
        what = "is not writable" if existing == p else f"cannot be made: {existing} is not writable"
        raise UserError(f"{flag} {p} {what}; pass a folder you can write to")
    return p


def _writable(folder: Path) -> bool:
    # os.access says yes to root everywhere; a read-only mount refuses root too.
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    return not read_only and os.access(folder, os.W_OK | os.X_OK)


def add_result_options(parser: argparse.ArgumentParser, strict: bool = True) -> None:
    """``--json`` (one JSON object on stdout, the text on stderr) and ``--strict`` (exit 3 on a failed gate)."""
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object with the figures on stdout (the text goes to stderr)")
    if strict:
        parser.add_argument("--strict", action="store_true",
                            help=f"exit with code {EXIT_GATE} when the result fails its quality gate (not compatible, "
                                 "collapsed embeddings, parity below thresholds)")


@dataclass
class Outcome:
    """What a command returns to :func:`hetero.cli.main`: its figures and its quality gate.

    Attributes:
        figures: the numbers the text printed, as one JSON-serialisable object (``--json``).
        failures: why the result fails its quality gate, one phrase each (``--strict`` exits 3).
    """

    figures: dict[str, Any]
    failures: list[str] = field(default_factory=list)


def gate_failures(record: dict[str, Any]) -> list[str]:
    """The quality gate of a report, an evaluation or a manifest, from the fields it has.

    ``compatible`` false, ``collapsed`` true, ``parity_passed`` false and a ``status`` other than
    ``"ok"`` each fail it; a field the record lacks is not judged.
    """
    failures = []
    if record.get("compatible") is False:
        failures.append("not compatible")
    if record.get("collapsed") is True:
        failures.append("collapsed embeddings")
    if record.get("parity_passed") is False:
        missed = record.get("parity_failures")
        failures.append("parity below thresholds" + (f" ({'; '.join(missed)})" if missed else ""))
    status = record.get("status")
    if isinstance(status, str) and status != "ok" and not failures:
        failures.append(status)
    return failures


def json_ready(value: Any) -> Any:
    """``value`` with numpy scalars and arrays as Python values and NaN/inf as ``null`` (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return json_ready(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value
