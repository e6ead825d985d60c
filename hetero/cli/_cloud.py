"""`hetero cloud train` and `hetero cloud import`: the frozen gallery model φ_g."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

from hetero.cli._common import COMMANDS, Outcome, add_data_options, add_result_options, add_train_options, split_from_args
from hetero.cli._schedule import config_with_length, refine_train_flags
from hetero.errors import UserError

__all__ = ["register"]


@COMMANDS.register("cloud")
def register(sub, common: argparse.ArgumentParser) -> None:
    defaults = _train_defaults()

    cloud = sub.add_parser("cloud", help="train or import the cloud (gallery) model", description="The cloud model indexes the gallery.")
    cloud_sub = cloud.add_subparsers(dest="cloud_command", metavar="ACTION", required=True)

    train = cloud_sub.add_parser(
        "train",
        parents=[common],
        help="train a ResNet-style cloud model with a classification head",
        description="Train a ResNet-style embedding model with a cosine classifier on the training split; writes DIR/cloud.pt.",
    )
    add_data_options(train)
    train.add_argument("--out", required=True, metavar="DIR", help="folder for cloud.pt and manifest.json")
    train.add_argument("--arch", metavar="ARCH.json", help="a resnet-space architecture (default: the space's default)")
    train.add_argument("--embed-dim", type=int, default=128, help="embedding dimension (default 128)")
    add_train_options(train, defaults)
    refine_train_flags(train, defaults)
    for action in train._actions:  # argparse keeps no public handle on an added option
        if action.dest == "val_fraction":
            action.help = ("share of the training split left out of the cloud's training: the validation part "
                           "`hetero search` with the same --seed and --val-fraction judges edges on; 0 trains "
                           f"on all (default {defaults.val_fraction})")
    add_result_options(train, strict=False)
    train.set_defaults(run=_run_train, command="cloud train")

    imp = cloud_sub.add_parser(
        "import",
        parents=[common],
        help="wrap your own torch model and weights as the cloud model",
        description=(
            "Wrap a model built by --factory with the state dict in --weights (loaded with weights_only=True). "
            "The embedding dim is inferred from a forward pass; a 4-D output is average-pooled."
        ),
    )
    imp.add_argument("--factory", required=True, metavar="MOD:FN", help="package.module:function returning the nn.Module")
    imp.add_argument("--weights", required=True, metavar="FILE", help="its state dict (.pt / .pth)")
    imp.add_argument("--out", required=True, metavar="DIR", help="folder for cloud.pt and manifest.json")
    imp.add_argument("--kwargs", default="{}", metavar="JSON", help="keyword arguments for the factory, as JSON")
    imp.add_argument("--size", type=int, default=224, help="input side in pixels (default 224)")
    imp.add_argument("--channels", type=int, choices=(1, 3), default=3, help="input channels (default 3)")
    imp.add_argument("--mean", type=float, nargs="+", default=[0.485, 0.456, 0.406], help="per-channel mean (default ImageNet)")
    imp.add_argument("--std", type=float, nargs="+", default=[0.229, 0.224, 0.225], help="per-channel std (default ImageNet)")
    imp.add_argument("--embed-dim", type=int, default=None, help="expected embedding dim (checked against the model)")
    imp.set_defaults(run=_run_import, command="cloud import")


def _train_defaults():
    """`cloud train`'s defaults: by default the cloud leaves out the part of the training split that a
    search with the same seed judges edges on (a cloud trained on those images saturates it: its
    validation mAP was 0.9994 on Omniglot)."""
    from hetero.search import SearchConfig
    from hetero.training import CLOUD_COMMAND_DEFAULTS

    return replace(CLOUD_COMMAND_DEFAULTS, val_fraction=SearchConfig().val_fraction)


def _run_train(args: argparse.Namespace) -> Outcome:
    from hetero.runtime import resolve_device
    from hetero.search import cloud_training_part
    from hetero.search_spaces import get_space, load_arch
    from hetero.stages import train_cloud_stage

    arch = load_arch(args.arch) if args.arch else get_space("resnet").default_arch()
    split = split_from_args(args, get_space(arch["space"]).resolution(arch))
    config = config_with_length(args, _train_defaults())
    train, holdout, note = cloud_training_part(split, config.val_fraction, args.seed)
    print(note)
    # A killed run started again continues after its last finished epoch.
    key = {"command": "cloud train", "data": args.data, "split": split.describe(), "arch": arch, "embed_dim": args.embed_dim,
           "train": config.to_dict()}
    meta = {"split": split.describe(), **({"holdout": holdout} if holdout is not None else {})}
    model, path = train_cloud_stage(train, split.test, arch, args.embed_dim, config, resolve_device(args.accelerator), args.seed,
                                    args.out, key, meta=meta)
    sched = model.meta["schedule"]
    print(f"trained {sched['steps']} steps ({sched['epochs']} epochs over {sched['train_images']} images; floor "
          f"{sched['min_steps']} steps), augment {sched['augment']}")
    print(f"cloud model {model.fingerprint[:23]}... written to {path}; paragon mAP {model.meta['paragon']['map']:.4f}")
    return Outcome({"fingerprint": model.fingerprint, "model": str(path), "paragon": model.meta["paragon"]})


def _run_import(args: argparse.Namespace) -> int:
    from hetero.data import Preprocess
    from hetero.models import import_cloud, save_cloud

    try:
        kwargs = json.loads(args.kwargs)
    except json.JSONDecodeError as exc:
        raise UserError(f"--kwargs is not valid JSON ({exc})") from None
    if not isinstance(kwargs, dict):
        raise UserError("--kwargs must be a JSON object")
    mean = args.mean if args.channels == 3 else args.mean[:1]
    std = args.std if args.channels == 3 else args.std[:1]
    preprocess = Preprocess(args.size, args.channels, tuple(mean), tuple(std))
    model = import_cloud(args.factory, args.weights, preprocess, args.embed_dim, kwargs)
    path = save_cloud(model, args.out)
    print(f"imported cloud model ({model.embed_dim}-d embeddings) {model.fingerprint[:23]}... written to {path}")
    return 0
