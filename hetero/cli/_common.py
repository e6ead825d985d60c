"""Helpers the sub-commands share: loading data and models from flags, printing tables."""

from __future__ import annotations

import argparse
from pathlib import Path

from hetero.data import Split, load_split
from hetero.errors import UserError

__all__ = ["add_data_options", "split_from_args", "print_table", "add_train_options", "train_config_from_args"]


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


def split_from_args(args: argparse.Namespace) -> Split:
    return load_split(args.data, protocol=args.protocol, seed=args.seed)


def print_table(headers: list[str], rows: list[list[object]]) -> None:
    """A plain aligned table on stdout (readable in a terminal and in a CI log); numbers right-aligned."""
    numeric = [all(isinstance(row[i], (int, float)) for row in rows) for i in range(len(headers))]
    cells = [headers] + [[f"{c:.4f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for i, row in enumerate(cells):
        print("  ".join(c.rjust(w) if numeric[j] else c.ljust(w) for j, (c, w) in enumerate(zip(row, widths))).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


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
            group.add_argument(flag, type=type(value), default=value, help=f"{helps.get(f.name, '')} (default {value})".strip())


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
