"""The training flags of `hetero train` and `hetero cloud train` that need more than a default:
the length (a floor on steps unless --epochs is given), the augmentation's choices, and help."""

from __future__ import annotations

import argparse

from hetero.cli._common import train_config_from_args

__all__ = ["refine_train_flags", "config_with_length"]

_HELPS = {
    "augment": ("training views: auto (photo for colour images, glyph for greyscale), none, glyph (small affine "
                "moves, no flips) or photo (random resized crop, flip, colour jitter); the cloud's targets are "
                "computed on the same view (default %s)"),
    "cloud_views": ("augmented views per image whose cloud embeddings are cached when that costs less than a "
                    "cloud pass per batch (default %s)"),
    "val_fraction": ("share of the training images held out to keep the epoch with the best validation cross mAP "
                     "among those compatible on it (edge->cloud above edge->edge), "
                     "where the data allows it; 0 keeps the last epoch (default %s)"),
    "structure": "weight of the distillation of the cloud's neighbourhoods (similarities to the batch) (default %s)",
    "structure_temperature": "softmax temperature of the structure and decorrelation terms (default %s)",
    "decorrelation": ("weight of the term that keeps the edge's errors (edge minus cloud embedding) on the cloud's near "
                      "neighbours from pointing the same way: shared errors let the edge search its own embeddings "
                      "better than the cloud's gallery (not compatible) (default %s)"),
}


def refine_train_flags(parser: argparse.ArgumentParser, defaults) -> None:
    """Help for the flags above, ``--augment``'s choices, and ``--epochs``/``--min-steps`` defaulting
    to ``None`` (not given). Call after :func:`hetero.cli._common.add_train_options`.
    """
    from hetero.data import AUGMENTS

    for action in parser._actions:  # argparse keeps no public handle on an added option
        if action.dest in _HELPS:
            action.help = _HELPS[action.dest] % (getattr(defaults, action.dest),)
        if action.dest == "augment":
            action.choices = AUGMENTS
    helps = {
        "epochs": (f"epochs to train (default {defaults.epochs}, raised as far as --min-steps needs; "
                   "given explicitly, exactly this many unless --min-steps is given too)"),
        "min_steps": (f"floor on optimizer steps: small data gets more epochs (default {defaults.min_steps} "
                      "unless --epochs is given)"),
    }
    for action in parser._actions:  # argparse keeps no public handle on an added option
        if action.dest in helps:
            action.default, action.help = None, helps[action.dest]


def config_with_length(args: argparse.Namespace, defaults):
    """The :class:`TrainConfig` of the flags, with the training length resolved (see ``training_length``)."""
    from hetero.training import training_length

    args.epochs, args.min_steps = training_length(args.epochs, args.min_steps, defaults)
    return train_config_from_args(args, defaults)
