"""`hetero export`: an edge model to a device's runtime, with parity proven on real images."""

from __future__ import annotations

import argparse
from pathlib import Path

from hetero.cli._common import COMMANDS, Outcome, add_data_options, add_result_options, gate_failures

__all__ = ["register", "print_manifest", "print_precision_report"]


@COMMANDS.register("export")
def register(sub, common: argparse.ArgumentParser) -> None:
    from hetero.devices import PARITY_THRESHOLDS, describe_thresholds  # numpy only: cheap at start-up

    p = sub.add_parser(
        "export",
        parents=[common],
        help="export an edge model for a device and check parity",
        description=(
            "Convert an edge model with the device profile's backend and precision, run the artifact on its "
            "runtime on real images and compare with PyTorch. Parity thresholds per precision: "
            + "; ".join(f"{precision} {describe_thresholds(limits)}" for precision, limits in PARITY_THRESHOLDS.items())
            + " (top1_agreement: the first results are of the same class, the retrieval decision; top1_item_agreement, reported beside it: the same gallery image). A profile's [parity] table "
            "overrides them (`hetero devices` shows each profile's). Writes DIR/<artifact>, DIR/manifest.json "
            "and a copy of the edge model."
        ),
    )
    p.add_argument("--model", required=True, metavar="EDGE", help="edge.pt or its folder")
    p.add_argument("--device", required=True, metavar="NAME", help="a profile name (see `hetero devices`) or a path to a .toml profile")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the artifact, manifest.json and a copy of the edge model")
    p.add_argument("--cloud", metavar="DIR", help="cloud model: its gallery is the parity retrieval's (as deployed), "
                   "and cross mAP is recorded at export; without it the edge model's own embeddings are the gallery")
    add_data_options(p, required=False, default_help="real images for int8 calibration (training split) and parity "
                     "(test split); default: the data the edge model was trained on")
    p.add_argument("--allow-drift", action="store_true", help="keep an artifact that misses its parity thresholds (the manifest says so)")
    p.add_argument("--qat", type=int, default=0, metavar="STEPS", help="int8: quantization-aware fine-tuning first, "
                   "STEPS optimizer steps (e.g. 300) against the --cloud model under the deployed int8 grid; the "
                   "folder's edge.pt is then the fine-tuned model (default 0: off)")
    p.add_argument("--no-fallback", action="store_true", help="int8: refuse an artifact that misses its thresholds instead of "
                   "keeping its most sensitive layers in float until it passes (the default; the manifest names them), "
                   "then exporting fp32 when that passes; fp16: refuse it instead of exporting fp32 when that passes")
    p.add_argument("--parity-images", type=int, default=None, metavar="N",
                   help="about how many test images (whole classes) parity is judged on (default 512); a gallery of "
                        "many classes holds more near-ties, so match the size of the gallery you deploy against")
    add_result_options(p)
    p.set_defaults(run=_run, command="export")


def _run(args: argparse.Namespace) -> Outcome:
    from hetero.models import load_cloud
    from hetero.stages import export_for_device

    cloud = load_cloud(args.cloud) if args.cloud else None
    manifest = export_for_device(Path(args.model), args.device, Path(args.out), args.data, args.protocol, args.seed, cloud, args.allow_drift,
                                 fallback_float=not args.no_fallback, qat_steps=args.qat,
                                 parity_images=args.parity_images)
    print_manifest(manifest)
    # Kept with --allow-drift, an artifact below its thresholds fails the gate (an unverified one is not judged).
    failures = gate_failures({"parity_passed": manifest.get("parity_passed"),
                              "parity_failures": _missed(manifest)})
    return Outcome({**manifest, "folder": args.out}, failures)


def _missed(manifest: dict) -> list[str]:
    from hetero.devices import parity_failures

    if manifest.get("parity_passed") is not False:
        return []
    return parity_failures(manifest.get("parity") or {}, manifest.get("parity_thresholds") or {})


def print_manifest(manifest: dict) -> None:
    p = manifest["parity"]
    if p:
        status = "PASSED" if manifest["parity_passed"] else "MISSED (kept with --allow-drift)"
        extra = f" (same image {p['top1_item_agreement']:.4f})" if "top1_item_agreement" in p else ""
        images = manifest.get("parity_data", {}).get("images")
        extra += f", cross mAP {p['cross_map']:.4f} (on the {images} parity images)" if "cross_map" in p else ""
        print(
            f"{manifest['device']}: {manifest['artifact']} ({manifest['format']} {manifest['precision']}, {manifest['bytes']:,} bytes); "
            f"parity {status}: cos min {p['cos_min']:.6f}, top-1 agreement {p['top1_agreement']:.4f}{extra}"
        )
    else:
        print(f"{manifest['device']}: {manifest['artifact']} written, not verified here: {manifest['not_verified_reason']}")
    for key, note in (manifest.get("notes") or {}).items():
        print(f"  {key}: {note}")
    print_precision_report(manifest)


def print_precision_report(manifest: dict) -> None:
    """The precision fallbacks (fp16 or int8 to fp32; int8 layers kept float) and the per-layer drift, where used."""
    for key in ("fp16_fallback", "int8_fp32_fallback"):
        fp32 = manifest.get(key)
        if fp32:
            asked = fp32["requested"]
            if "layer_fallback_skipped" in fp32:
                print(f"  int8 layer fallback not tried: {fp32['layer_fallback_skipped']}")
            print(f"  {asked} missed parity ({'; '.join(fp32[f'{asked}_missed'])}): "
                  + (f"exported in fp32 instead ({fp32['fp32_bytes']:,} bytes against {fp32[f'{asked}_bytes']:,})"
                     if fp32["used"] else "fp32 missed too"))
    fallback = manifest.get("int8_fallback")
    if fallback:
        print(f"  int8 fallback: {len(fallback['kept_float'])} of {fallback['layers']} layers kept in float "
              f"({', '.join(fallback['kept_float'])}); {fallback['bytes']:,} bytes against {fallback['int8_bytes']:,} "
              f"all-int8, batch-32 latency x{fallback['latency_ratio_b32']:.2f} of all-int8")
    first = (manifest.get("int8_drift") or {}).get("first_divergence")
    if first:
        print(f"  int8 drift: first diverges at layer {first['index']} ({first['op']} {first['label']}): "
              f"cos mean {first['cos_mean']:.4f}, min {first['cos_min']:.4f} (manifest int8_drift has every layer)")
    if manifest.get("collapse", {}).get("collapsed"):
        print(f"  {manifest['collapse']['reason']}")
