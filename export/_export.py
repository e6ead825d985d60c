"""Convert, prove on the runtime, write the manifest: one call for ``hetero export``."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch

from devices import RuntimeUnavailableError, parity, write_manifest
from devices.manifest import artifact_entry
from export._base import get_backend

__all__ = ["export_model", "manifest_fields"]


def manifest_fields(backend: str, artifact: str | Path, precision: str,
                    input_shape: tuple[int, ...], embedding_dim: int) -> dict[str, Any]:
    """The manifest keys that export knows (DESIGN.md); hetero adds preprocessing, the cloud
    fingerprint, parity and cross mAP.

    Args:
        backend: Backend name.
        artifact: The file (or directory) :meth:`Backend.convert` returned.
        precision: Its precision.
        input_shape: ``(C, H, W)`` of one image; the batch is dynamic (``null``).
        embedding_dim: D.
    """
    b = get_backend(backend)
    return {
        "format": b.name, "runtime": b.runtime, "precision": precision,
        "input": {"shape": [None, *map(int, input_shape)], "dtype": "float32"},
        "embedding_dim": int(embedding_dim), **artifact_entry(artifact),
        "tool_versions": b.versions(), "notes": b.notes(Path(artifact)),
    }


def export_model(model: torch.nn.Module, example: torch.Tensor, out_dir: str | Path,
                 backend: str, precision: str = "fp32", calibration: np.ndarray | None = None,
                 check_inputs: np.ndarray | None = None, threads: int | None = None,
                 extra: dict[str, Any] | None = None) -> tuple[Path, dict[str, Any]]:
    """Export ``model``, measure its parity on the runtime, and write ``manifest.json``.

    Args:
        model: Embedding model (copied, not modified).
        example: One input ``[1, C, H, W]`` of the deployed shape.
        out_dir: Artifact folder.
        backend: Backend name.
        precision: ``fp32``, ``fp16`` or ``int8``.
        calibration: Real preprocessed images for int8.
        check_inputs: Real preprocessed images to measure parity on; ``None`` skips it.
        threads: Runtime threads for the parity run.
        extra: More manifest keys (preprocessing, cloud_fingerprint, cross_map, ...).

    Returns:
        The artifact's path and the manifest written. ``manifest["parity"]`` holds
        :func:`devices.parity`'s figures, or ``{"skipped": reason}`` where the runtime cannot run
        here (e.g. TensorRT without CUDA).
    """
    out_dir = Path(out_dir)
    artifact = get_backend(backend).convert(model, example, out_dir, precision, calibration)
    probe = example if check_inputs is None else torch.from_numpy(
        np.ascontiguousarray(check_inputs, dtype=np.float32))
    with torch.no_grad():  # on a CPU copy in eval mode: the caller's model is left as it was
        reference = copy.deepcopy(model).cpu().float().eval()(probe.cpu().float()).numpy()
    manifest = manifest_fields(backend, artifact, precision, tuple(example.shape[1:]),
                               reference.shape[1])
    if check_inputs is not None:
        try:
            runner = get_backend(backend).load(artifact, threads=threads)
            manifest["parity"] = parity(reference, runner.run(check_inputs))
        except RuntimeUnavailableError as exc:
            manifest["parity"] = {"skipped": str(exc)}
    manifest.update(extra or {})
    write_manifest(out_dir, manifest)
    return artifact, manifest
