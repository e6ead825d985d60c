"""The export stage: an edge model to a device's artifact, with the source model recorded beside it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from hetero._io import atomic_path
from hetero.data import Split
from hetero.errors import UserError
from hetero.models import CloudModel

__all__ = ["export_for_device"]


def export_for_device(edge_path: Path, device: str, out: Path, data: str | None, protocol: str | None, seed: int,
                      cloud: CloudModel | None = None, allow_drift: bool = False, split: Split | None = None,
                      fallback_float: bool = True, qat_steps: int = 0,
                      parity_images: int | None = None) -> dict[str, Any]:
    """Export the edge model at ``edge_path`` for ``device`` into ``out``; returns the manifest.

    Loads the device profile, optionally fine-tunes for int8 (QAT), runs
    :func:`hetero.exporting.export_edge`, and keeps a copy of the PyTorch reference (``edge.pt``)
    whose sha256 the manifest records as ``source_model``.

    Args:
        edge_path: ``edge.pt`` or its folder.
        device: a profile name or a path to a ``.toml`` profile.
        out: the folder for the artifact, ``manifest.json`` and ``edge.pt``.
        data: the data SPEC for calibration and parity (default: the edge model's own).
        protocol: its split protocol (default: the edge model's).
        seed: the split's seed (and QAT's).
        cloud: the cloud model: its gallery is the parity retrieval's; needed for QAT.
        allow_drift: keep an artifact that misses its parity thresholds.
        split: the data split already loaded (``data``, ``protocol`` and ``seed`` are then ignored).
        fallback_float: int8: keep the most sensitive layers in float until parity passes.
        qat_steps: quantization-aware fine-tuning steps before an int8 export (0: none).
        parity_images: about how many test images parity is judged on (default
            :data:`hetero.exporting.PARITY_IMAGES`).

    Raises:
        UserError: ``qat_steps`` is negative, or QAT was asked for a non-int8 profile or without ``cloud``.
    """
    from hetero.data import load_split
    from hetero.devices import load_profile
    from hetero.devices.manifest import record_source_model
    from hetero.exporting import export_edge
    from hetero.models import load_edge

    edge = load_edge(edge_path)
    profile = load_profile(device)
    if qat_steps < 0:
        raise UserError(f"--qat {qat_steps}: the number of fine-tuning steps must be 0 (off) or more; e.g. --qat 300")
    if qat_steps and (profile.precision != "int8" or cloud is None):
        raise UserError(f"--qat fine-tunes for an int8 profile against the cloud model: device {profile.name} is "
                        f"{profile.precision}{'' if cloud is not None else ' and no --cloud was given'}; pass an int8 "
                        "device and --cloud, or drop --qat")
    split_info = edge.meta.get("split", {})
    spec = data or edge.meta.get("data") or "digits"
    split = split or load_split(spec, protocol=protocol or split_info.get("protocol"), seed=seed)
    if qat_steps:
        from hetero.training import quantization_aware_finetune

        edge = quantization_aware_finetune(edge, cloud, split.train, steps=qat_steps, seed=seed)
    manifest = export_edge(edge, profile, out, split.train, split.test, cloud=cloud, allow_drift=allow_drift,
                           fallback_float=fallback_float,
                           **({"parity_images": parity_images} if parity_images is not None else {}))
    src = edge_path / "edge.pt" if edge_path.is_dir() else edge_path
    if qat_steps:  # the artifact's PyTorch reference is the fine-tuned model
        from hetero.models import save_edge

        save_edge(edge, out)
    elif src.resolve() != (out / "edge.pt").resolve():
        with atomic_path(out / "edge.pt") as tmp:
            shutil.copyfile(src, tmp)
    # The copy is the bench's PyTorch reference: its sha256 goes into the manifest like the artifact's.
    manifest["source_model"] = record_source_model(out)["source_model"]
    return manifest
