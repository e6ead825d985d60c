"""`hetero export`: convert an edge model for a device, prove parity on real images, write the
artifact and its manifest.

The backends in ``export/`` only convert; this module decides whether the result is good enough
(per-precision parity thresholds on real images of the data, DESIGN.md) and records why.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import shutil
from pathlib import Path

import numpy as np
import torch
from devices import PARITY_THRESHOLDS, parity_failures, parity_thresholds

from hetero.cost import count_cost
from hetero.data import Dataset, Preprocess
from hetero.errors import UserError
from hetero.metrics import parity, retrieval_metrics
from hetero.models import CloudModel, EdgeModel

__all__ = ["PARITY_THRESHOLDS", "export_edge", "parity_failures", "parity_thresholds", "artifact_preprocess", "top1_gaps"]

#: Real images used for int8 calibration and for the parity check.
CALIBRATION_IMAGES = 256
PARITY_IMAGES = 512


def artifact_preprocess(edge: EdgeModel, profile) -> Preprocess:
    """The edge model's preprocessing at the device's input shape (where the profile fixes one)."""
    if profile.input_channels not in (None, edge.preprocess.channels):
        raise UserError(
            f"device {profile.name} takes {profile.input_channels}-channel images but the edge model takes "
            f"{edge.preprocess.channels}; train the edge model on matching data or edit the profile"
        )
    size = profile.input_resolution or edge.preprocess.size
    return dataclasses.replace(edge.preprocess, size=size)


def export_edge(
    edge: EdgeModel,
    profile,
    out_dir: str | os.PathLike[str],
    calibration_data: Dataset,
    parity_data: Dataset,
    cloud: CloudModel | None = None,
    allow_drift: bool = False,
) -> dict:
    """Export ``edge`` for ``profile`` into ``out_dir`` and return the manifest written there.

    Args:
        edge: the trained edge model.
        profile: a :class:`devices.DeviceProfile`.
        out_dir: the artifact folder (artifact file + ``manifest.json``).
        calibration_data: real images for int8 calibration (the training split).
        parity_data: real images to compare runtime and PyTorch on (the test split).
        cloud: when given, cross mAP of the runtime's queries against its gallery is recorded.
        allow_drift: write an artifact that misses its parity thresholds (the manifest says so).

    Raises:
        UserError: the artifact misses its thresholds and ``allow_drift`` is off.
    """
    from devices import write_manifest
    from devices.manifest import artifact_entry
    from export import get_backend

    if cloud is not None and cloud.fingerprint != edge.cloud_fingerprint:
        raise UserError(
            f"--cloud is model {cloud.fingerprint[:19]}..., but the edge model was trained for "
            f"{edge.cloud_fingerprint[:19]}...; pass the cloud model it was trained against"
        )
    backend = get_backend(profile.backend)
    preprocess = artifact_preprocess(edge, profile)
    out = Path(out_dir)
    staging = out / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    calib = _calibration(backend, profile, calibration_data, preprocess)
    parity_index = _parity_index(parity_data.labels, PARITY_IMAGES)
    inputs = preprocess(parity_data.images[parity_index]).numpy()
    labels = parity_data.labels[parity_index]
    example = torch.from_numpy(inputs[:1])
    artifact = backend.convert(edge.net, example, staging, precision=profile.precision, calibration=calib)

    torch_emb = edge.embed_preprocessed(inputs)
    figures, verified_reason = _measure_parity(backend, artifact, inputs, labels, torch_emb, cloud,
                                               parity_data.images[parity_index])
    thresholds = parity_thresholds(profile)
    failures = parity_failures(figures, thresholds) if figures else []
    if failures and not allow_drift:
        shutil.rmtree(staging, ignore_errors=True)
        raise UserError(
            f"{profile.backend} {profile.precision} artifact misses its parity thresholds ({'; '.join(failures)}"
            f"{_tie_hint(figures)}); not written. Re-run with --allow-drift to keep it anyway"
        )
    final = out / artifact.name
    if final.exists():
        shutil.rmtree(final) if final.is_dir() else final.unlink()
    out.mkdir(parents=True, exist_ok=True)
    os.replace(artifact, final)
    shutil.rmtree(staging, ignore_errors=True)

    cost = count_cost(edge.net, (preprocess.channels, preprocess.size, preprocess.size))
    manifest = {
        "format": profile.backend,
        **artifact_entry(final),
        "device": profile.name,
        "precision": profile.precision,
        **({"quantization": profile.quantization} if profile.precision == "int8" else {}),
        "input_shape": [preprocess.channels, preprocess.size, preprocess.size],
        "dynamic_batch": True,
        "preprocess": preprocess.to_dict(),
        "embedding_dim": edge.embed_dim,
        "cloud_fingerprint": edge.cloud_fingerprint,
        "edge": {"arch": edge.arch, **cost},
        "parity": figures,
        "parity_thresholds": thresholds,
        "parity_thresholds_from": (f"device profile [parity] ({', '.join(sorted(profile.parity))}) over the {profile.precision} defaults"
                                   if profile.parity else f"{profile.precision} defaults"),
        "parity_passed": not failures if figures else None,
        "verified": figures != {},
        "not_verified_reason": verified_reason,
        "allow_drift": bool(allow_drift and failures),
        "parity_data": {"spec": parity_data.spec, "images": int(len(inputs))},
        "cross_map_at_export": figures.get("cross_map"),
        "notes": backend.notes(final),
        "tool_versions": backend.versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    write_manifest(out, manifest)
    return manifest


def _sample_index(n: int, k: int) -> np.ndarray:
    # Evenly spaced, not random: the same images every export, every class represented.
    return np.unique(np.linspace(0, n - 1, min(n, k)).astype(np.int64))


def _parity_index(labels: np.ndarray, k: int) -> np.ndarray:
    """About ``k`` images of whole classes spread over the label range: every query of the parity
    retrieval needs a same-class item (evenly spaced images would give Omniglot's 659 classes of
    20 images less than one each)."""
    classes, counts = np.unique(labels, return_counts=True)
    n_classes = max(1, min(len(classes), int(k // counts.mean())))
    chosen = classes[_sample_index(len(classes), n_classes)]
    return np.flatnonzero(np.isin(labels, chosen))[:k]


def _calibration(backend, profile, data: Dataset, preprocess: Preprocess) -> np.ndarray | None:
    """Calibration images for static int8; ``None`` asks the backend for dynamic int8."""
    if profile.precision == "int8" and profile.quantization == "dynamic":
        if "dynamic" not in backend.int8_quantizations:
            raise UserError(
                f"device {profile.name} asks for dynamic int8, which the {profile.backend} backend does not "
                f"implement (it does: {', '.join(backend.int8_quantizations)}); set quantization = \"static\" "
                "in the profile"
            )
        return None
    return _sample(data.images, CALIBRATION_IMAGES, preprocess)


def _sample(images: np.ndarray, k: int, preprocess: Preprocess) -> np.ndarray:
    return preprocess(images[_sample_index(len(images), k)]).numpy()


def _measure_parity(backend, artifact: Path, inputs, labels, torch_emb, cloud, images) -> tuple[dict, str | None]:
    """Run the artifact on ``inputs`` and compare with PyTorch; ``({}, reason)`` if it cannot run here."""
    from devices.runtimes import get_runtime

    ok, reason = get_runtime(backend.runtime or backend.name).available()
    if not ok:
        return {}, f"runtime not available here: {reason}"
    runner = backend.load(artifact)
    runtime_emb = runner.run(inputs)
    if cloud is not None:
        gallery = cloud.embed(images)
    else:
        gallery = torch_emb
    ref = retrieval_metrics(torch_emb, gallery, labels, labels, same_images=True)
    cand = retrieval_metrics(runtime_emb, gallery, labels, labels, same_images=True)
    figures = parity(torch_emb, runtime_emb, ref, cand, gallery_labels=labels)
    figures["top1_gap_median"] = float(np.median(top1_gaps(torch_emb, gallery)))
    if cloud is not None:
        figures["cross_map"] = cand.map
        figures["cross_map_torch"] = ref.map
    return figures, None


def top1_gaps(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """Per query, the gap between its first and second similarity in ``gallery`` (leave-one-out:
    query ``i`` and gallery item ``i`` are the same image, as in the parity retrieval): how close
    to a tie each top-1 decision is, which bounds the top-1 agreement any lower precision can keep."""
    from hetero.metrics import l2_normalize

    scores = l2_normalize(queries) @ l2_normalize(gallery).T
    np.fill_diagonal(scores, -np.inf)
    top2 = np.sort(np.partition(scores, -2, axis=1)[:, -2:], axis=1)
    return top2[:, 1] - top2[:, 0]


def _tie_hint(figures: dict[str, float]) -> str:
    """Where the top-1 items differ but their classes agree, say so: that is what near-ties in a
    dense gallery do to any reduced precision, not a conversion fault."""
    if "top1_agreement" not in figures or "top1_gap_median" not in figures:
        return ""
    return (f"; the first-ranked items are of the same class for {figures['top1_agreement']:.4f} of the "
            f"queries, and the median gap between the first two similarities is {figures['top1_gap_median']:.5f}")
