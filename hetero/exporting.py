"""`hetero export`: convert an edge model for a device, prove parity on real images, write the
artifact and its manifest.

The backends in ``export/`` only convert; this module decides whether the result is good enough
(per-precision parity thresholds on real images of the data, DESIGN.md) and records why.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from hetero.cost import count_cost
from hetero.data import Dataset, Preprocess
from hetero.devices import PARITY_THRESHOLDS, parity_failures, parity_thresholds
from hetero.errors import UserError
from hetero.metrics import RetrievalResult, embedding_collapse, parity, retrieval_metrics
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
    fallback_float: bool = True,
    parity_images: int = PARITY_IMAGES,
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
        fallback_float: when an int8 artifact misses its thresholds, keep its most sensitive
            layers in float until it passes (where the backend can), before refusing it.
        parity_images: about how many test images (whole classes) parity is judged on; top-1
            agreement in a gallery of many classes holds more near-ties than in a small one,
            so judge on a set the size of the gallery the model will be deployed against.

    Raises:
        UserError: the artifact misses its thresholds and ``allow_drift`` is off.
    """
    from hetero.devices.manifest import artifact_entry, check_manifest, write_manifest
    from hetero.export import get_backend

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
    if parity_images < 2:
        raise UserError(f"--parity-images {parity_images}: parity needs at least 2 images (a query and an item "
                        f"of its class); e.g. --parity-images {PARITY_IMAGES}")
    parity_index = _parity_index(parity_data.labels, parity_images)
    inputs = preprocess(parity_data.images[parity_index]).numpy()
    labels = parity_data.labels[parity_index]
    example = torch.from_numpy(inputs[:1])
    float_artifact: Path | None = None
    if profile.precision == "int8" and calib is not None and backend.keeps_layers_float:
        # Convert once: quantizing the backend's own float artifact equals converting at int8 (a
        # test checks it), and the drift report and fallback need that float artifact anyway.
        float_artifact = backend.convert(edge.net, example, staging / "float", precision="fp32")
        artifact = backend.quantize_float_artifact(float_artifact, staging, calib)
    else:
        artifact = backend.convert(edge.net, example, staging, precision=profile.precision, calibration=calib)

    torch_emb = edge.embed_preprocessed(inputs)
    # The gallery is embedded once: the fallback measures tens of candidates against it.
    cross = cloud is not None
    gallery = cloud.embed(parity_data.images[parity_index]) if cloud is not None else torch_emb

    @functools.cache
    def reference() -> tuple[RetrievalResult, float]:
        # PyTorch's own retrieval and top-1 gaps are the same for every candidate: computed once,
        # and only once a runtime runs here (each is minutes on a 13,000-image split).
        return (retrieval_metrics(torch_emb, gallery, labels, labels, same_images=True),
                float(np.median(top1_gaps(torch_emb, gallery))))

    measure = functools.partial(_measure_parity, backend, inputs=inputs, labels=labels, torch_emb=torch_emb,
                                gallery=gallery, cross=cross, reference=reference)
    figures, verified_reason = measure(artifact)
    thresholds = parity_thresholds(profile)
    failures = parity_failures(figures, thresholds) if figures else []
    int8_report: dict = {}
    if failures and profile.precision == "int8":
        if float_artifact is None:
            float_artifact = backend.convert(edge.net, example, staging / "float", precision="fp32")
        drift = _layer_drift(backend, float_artifact, artifact, inputs)
        int8_report["drift"] = drift
        # Static int8 only: a dynamic-range model's activations are float already.
        can_fall_back = fallback_float and calib is not None and backend.keeps_layers_float
        # A network can say the layer search is not worth running (LQF's linearised networks: see
        # LinearizedNet.int8_unsuited, which measured no passing choice and twice the layers).
        unsuited = getattr(edge.net, "int8_unsuited", None)
        skipped = unsuited(torch.from_numpy(inputs[:DRIFT_IMAGES])) if can_fall_back and unsuited else None
        if skipped:
            int8_report["fallback_skipped"] = skipped
            can_fall_back = False
        fallback = None
        if can_fall_back and calib is not None:  # (calib is not None already: for the type checker)
            fallback = _fallback(backend, float_artifact, calib, measure, thresholds, drift, staging, artifact, inputs,
                                 torch_emb, figures)
        int8_report["fallback_tried"] = can_fall_back
        if fallback is not None and "artifact" not in fallback:
            int8_report["fallback_failed"] = fallback["tried"]
        elif fallback is not None:
            int8_report["fallback"] = fallback.pop("summary")
            artifact, figures, failures = fallback["artifact"], fallback["figures"], []
    fp32_fallback: dict = {}
    if failures and profile.precision in ("fp16", "int8") and fallback_float:
        fp32_fallback, fallback_result = _fp32_fallback(backend, edge, example, staging, measure, thresholds, artifact,
                                                        figures, failures, profile.precision)
        if "fallback_skipped" in int8_report:
            fp32_fallback["layer_fallback_skipped"] = int8_report["fallback_skipped"]
        if fallback_result is not None:
            artifact, figures, failures = *fallback_result, []
    if failures and not allow_drift:
        shutil.rmtree(staging, ignore_errors=True)
        raise UserError(
            f"{profile.backend} {profile.precision} artifact misses its parity thresholds ({'; '.join(failures)}"
            f"{_tie_hint(figures)}{_drift_hint(int8_report)}{_fp32_hint(fp32_fallback)}); not written. Re-run with --allow-drift to keep it anyway"
        )
    final = out / artifact.name
    if final.exists():
        shutil.rmtree(final) if final.is_dir() else final.unlink()
    out.mkdir(parents=True, exist_ok=True)
    os.replace(artifact, final)
    shutil.rmtree(staging, ignore_errors=True)

    cost = count_cost(edge.net, (preprocess.channels, preprocess.size, preprocess.size))
    collapse = embedding_collapse(torch_emb, name="the edge model's embeddings of the parity images")
    manifest = {
        "format": profile.backend,
        **artifact_entry(final),
        "device": profile.name,
        "precision": "fp32" if fp32_fallback.get("used") else profile.precision,
        **({"int8_fp32_fallback" if profile.precision == "int8" else "fp16_fallback": fp32_fallback}
           if fp32_fallback else {}),
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
        "parity_data": {"spec": parity_data.spec, "images": int(len(inputs)),
                        "classes": int(len(np.unique(labels)))},
        **({"int8_drift": int8_report["drift"]} if "drift" in int8_report else {}),
        **({"int8_fallback": int8_report["fallback"]} if "fallback" in int8_report else {}),
        **({"int8_fallback_failed": int8_report["fallback_failed"]} if "fallback_failed" in int8_report else {}),
        "collapse": collapse.to_dict(),
        "status": _status(failures, figures, collapse),
        "cross_map_at_export": figures.get("cross_map"),
        "notes": backend.notes(final),
        "tool_versions": backend.versions(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    write_manifest(out, check_manifest(manifest))
    return manifest


def _fp32_fallback(backend, edge: EdgeModel, example: torch.Tensor, staging: Path, measure, thresholds: dict,
                   missed_artifact: Path, missed_figures: dict, missed_failures: list[str],
                   requested: str) -> tuple[dict, tuple[Path, dict] | None]:
    """An fp16 or int8 artifact that misses parity (int8: after the layer fallback): the same
    model in fp32, kept if that passes.

    fp16 rounds every weight (and on some runtimes every activation), int8 every activation; a
    model whose output is discontinuous in its weights or inputs - LQF's linearised networks, whose
    tangent masks flip where a pre-activation crosses 0, and whose output can be the small sum of
    two large, cancelling paths - moves by more than the thresholds allow. fp32 is what the
    device can run instead, in more bytes (twice fp16's, up to four times int8's); the manifest
    says so (``fp16_fallback``, ``int8_fp32_fallback``) and its ``precision`` is the artifact's own.

    Returns:
        The manifest entry and, when fp32 passes, ``(artifact, figures)`` to keep.
    """
    from hetero.devices.manifest import artifact_bytes

    fp32 = backend.convert(edge.net, example, staging / "fp32", precision="fp32")
    figures, _ = measure(fp32)
    passed = bool(figures) and not parity_failures(figures, thresholds)
    entry = {
        "requested": requested,
        "used": passed,
        f"{requested}_missed": missed_failures,
        f"{requested}_parity": {k: missed_figures[k] for k in ("cos_min", "cos_mean", "top1_agreement")
                                if k in missed_figures},
        "fp32_parity": {k: figures[k] for k in ("cos_min", "cos_mean", "top1_agreement") if k in figures},
        f"{requested}_bytes": artifact_bytes(missed_artifact),
        "fp32_bytes": artifact_bytes(fp32),
    }
    return entry, ((fp32, figures) if passed else None)


def _fp32_hint(fallback: dict) -> str:
    if not fallback:
        return ""
    return f"; fp32 tried instead and missed too (cos_min {fallback['fp32_parity'].get('cos_min', float('nan')):.6f})"


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


def _measure_parity(backend, artifact: Path, *, inputs, labels, torch_emb, gallery, cross: bool,
                    reference: Callable[[], tuple[RetrievalResult, float]]) -> tuple[dict, str | None]:
    """Run the artifact on ``inputs`` and compare with PyTorch, retrieving in ``gallery`` (the
    cloud's embeddings of the same images when ``cross``, else the edge's own; ``reference()`` is
    PyTorch's retrieval there and its median top-1 gap); ``({}, reason)`` if it cannot run here."""
    from hetero.devices.runtimes import get_runtime

    ok, reason = get_runtime(backend.runtime or backend.name).available()
    if not ok:
        return {}, f"runtime not available here: {reason}"
    runner = backend.load(artifact)
    runtime_emb = runner.run(inputs)
    ref, gap_median = reference()
    cand = retrieval_metrics(runtime_emb, gallery, labels, labels, same_images=True)
    figures = parity(torch_emb, runtime_emb, ref, cand, gallery_labels=labels)
    figures["top1_gap_median"] = gap_median  # PyTorch's own: the same for every candidate
    if cross:
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


#: Parity images the per-layer drift is measured on (every layer's activations are held at once).
DRIFT_IMAGES = 128


def _layer_drift(backend, float_artifact: Path, artifact: Path, inputs: np.ndarray) -> dict:
    """Per-layer cosine between the int8 artifact and a float artifact of the same model, both on
    their runtime; ``{"layers": [...], "first_divergence": row or None}`` (``{}`` where the
    backend cannot read its layers)."""
    from hetero.export._drift import first_divergence, layer_drift

    x = inputs[:DRIFT_IMAGES]
    quantized = backend.layer_outputs(artifact, x)
    if not quantized:
        return {}
    rows = layer_drift(backend.layer_outputs(float_artifact, x), quantized)
    for index, row in enumerate(rows):
        row["index"], row["label"] = index, layer_label(row["layer"])
    return {"images": int(len(x)), "layers": rows, "first_divergence": first_divergence(rows)}


def layer_label(name: str) -> str:
    """A layer's name as a person reads it: TFLite names carry the torch module path
    (``pkg.mod.Class_attr/...;...``), shortened to its classes and attributes."""
    first = name.split(";")[0]
    parts = [part.rsplit(".", 1)[-1] for part in first.split("/")]
    return "/".join(parts[1:] if len(parts) > 2 else parts)


def _fallback(backend, float_artifact: Path, calibration: np.ndarray, measure, thresholds: dict, drift: dict,
              staging: Path, artifact: Path, inputs: np.ndarray, reference: np.ndarray,
              all_int8: dict) -> dict | None:
    """Keep the fewest of the most sensitive layers in float that make parity pass (NNCF's accuracy
    control): 1, 2, 4, ... of them, then bisection. Layers are ranked by what each costs quantized alone
    (:mod:`hetero.export._sensitivity`, one re-quantization of the float artifact per layer). Returns
    the passing artifact, its figures and a summary of what it cost; ``{"tried": [...]}`` (the
    figures of each candidate, the all-int8 ``all_int8`` figures first) when even all layers in
    float but one miss; ``None`` when the backend cannot keep layers in float."""
    from hetero.devices.manifest import artifact_bytes
    from hetero.export._sensitivity import layer_sensitivity, most_sensitive_alone

    if not backend.keeps_layers_float or not drift.get("layers"):
        return None
    labels = {row["layer"]: row["label"] for row in drift["layers"]}
    requantize = functools.partial(backend.quantize_float_artifact, float_artifact, calibration=calibration)
    with tqdm(total=len(labels), desc="int8 fallback: each layer quantized alone", unit="layer", leave=False,
              disable=None) as bar:
        sensitivity = layer_sensitivity(backend, float_artifact, list(labels), calibration,
                                        inputs[:DRIFT_IMAGES], reference[:DRIFT_IMAGES], staging / "sensitivity",
                                        progress=lambda done, total: bar.update(1))
    order = most_sensitive_alone(sensitivity)
    # At least one layer stays int8: an artifact with every layer in float is not an int8 artifact,
    # and passing it as one would hide that int8 does not work for this model.
    most = len(order) - 1
    tried = [_tried_row(0, all_int8)]  # the all-int8 artifact, what each candidate is measured against

    def attempt(count: int) -> tuple[Path, dict] | None:
        candidate = requantize(staging / f"fallback-{count}", keep_float=tuple(order[:count]))
        figures, _ = measure(candidate)
        tried.append(_tried_row(count, figures))
        return None if parity_failures(figures, thresholds) else (candidate, figures)

    # Doubling finds a passing count, then bisection the fewest that pass (between the last miss
    # and the first pass): 32 layers may miss where 40 pass, and 52 would throw most of int8 away.
    failed, count, passed = 0, 1, None
    while passed is None:
        passed = attempt(count)
        if passed is None:
            if count >= most:
                return {"tried": tried}
            failed, count = count, min(2 * count, most)
    count, passed = _bisect(attempt, count, failed, passed)
    kept = order[:count]
    passed, int8_weights = _int8_weights_for_kept(backend, float_artifact, kept, passed, requantize, measure,
                                                  thresholds, staging, tried)
    candidate, figures = passed
    by_layer = {row["layer"]: row for row in sensitivity}
    summary = {
        "kept_float": [labels[name] for name in kept],
        "kept_float_layers": kept,
        "layers": len(order),
        "tried": tried,
        "ranked_by": (f"each layer quantized alone (the others float), cos of the embeddings to PyTorch's "
                      f"on {min(len(inputs), DRIFT_IMAGES)} parity images, worst image first"),
        "sensitivity": [{"label": labels[name], "cos_min": by_layer[name]["cos_min"],
                         "cos_mean": by_layer[name]["cos_mean"]} for name in kept],
        "int8_weights": [labels[name] for name in int8_weights],
        "float_weights": [labels[name] for name in kept if name not in int8_weights],
        "bytes": artifact_bytes(candidate),
        "float_bytes": artifact_bytes(float_artifact),
        "int8_bytes": artifact_bytes(artifact),
        "latency_ratio_b32": _latency_ratio(backend, candidate, artifact, inputs),
    }
    return {"artifact": candidate, "figures": figures, "summary": summary}


def _int8_weights_for_kept(backend, float_artifact: Path, kept: list[str], passed: tuple[Path, dict], requantize,
                           measure, thresholds: dict, staging: Path, tried: list[dict]
                           ) -> tuple[tuple[Path, dict], list[str]]:
    """Store as many of the kept layers' weights in int8 as parity allows (weight-only: the layer
    still computes in float), the layers with most weights first: weight rounding costs far less
    than activation rounding in most layers, but not in all (a pointwise convolution with few
    input channels of very different ranges can lose cos 0.2 from its weights alone). All of
    them first, then bisection between none (``passed``, known to pass) and all. Returns the
    passing candidate and the layers whose weights it stores in int8."""
    counts = backend.layer_weight_counts(float_artifact)
    by_size = sorted((name for name in kept if counts.get(name, 0) > 0), key=lambda name: -counts[name])
    if not by_size:
        return passed, []

    def attempt(n: int) -> tuple[Path, dict] | None:
        candidate = requantize(staging / f"fallback-{len(kept)}-w{n}", keep_float=tuple(kept),
                               int8_weights=tuple(by_size[:n]))
        figures, _ = measure(candidate)
        tried.append(_tried_row(len(kept), figures, int8_weights=n))
        return None if parity_failures(figures, thresholds) else (candidate, figures)

    found = attempt(len(by_size))
    if found is not None:
        return found, by_size
    best, passed = _bisect(attempt, 0, len(by_size), passed)
    return passed, by_size[:best]


def _bisect(attempt, good: int, bad: int, found: tuple[Path, dict]) -> tuple[int, tuple[Path, dict]]:
    """Narrow ``good`` (a count whose candidate ``found`` passes) and ``bad`` (one that fails) to
    neighbours; ``attempt(n)`` builds and measures candidate ``n``, ``None`` when it fails."""
    while abs(good - bad) > 1:
        middle = (good + bad) // 2
        result = attempt(middle)
        if result is None:
            bad = middle
        else:
            good, found = middle, result
    return good, found


def _tried_row(kept_float: int, figures: dict, int8_weights: int | None = None) -> dict:
    """One fallback candidate in the manifest: how many layers it kept float (and of those, how
    many store their weights in int8) and its parity figures."""
    return {"kept_float": kept_float, **({"int8_weights": int8_weights} if int8_weights is not None else {}),
            **{k: round(figures[k], 6) for k in ("cos_min", "top1_agreement", "cross_map")
               if figures.get(k) is not None}}


def _latency_ratio(backend, candidate: Path, reference: Path, inputs: np.ndarray, rounds: int = 5) -> float:
    """Median over ``rounds`` of candidate/reference time for one batch of 32, measured in turn."""
    batch = inputs[:32]
    runners = [backend.load(candidate, threads=1), backend.load(reference, threads=1)]
    for runner in runners:
        runner.run(batch)
    ratios = []
    for _ in range(rounds):
        times = []
        for runner in runners:
            start = time.perf_counter()
            runner.run(batch)
            times.append(time.perf_counter() - start)
        ratios.append(times[0] / max(times[1], 1e-9))
    return float(np.median(ratios))


def _drift_hint(int8_report: dict) -> str:
    first = (int8_report.get("drift") or {}).get("first_divergence")
    if not first:
        return ""
    tried = ""
    if int8_report.get("fallback_failed"):
        last = int8_report["fallback_failed"][-1]
        tried = (f", and keeping up to {last['kept_float']} of its {len(int8_report['drift']['layers'])} layers in float "
                 f"(the most sensitive first) did not recover parity (cos_min {last['cos_min']}, top1_agreement "
                 f"{last['top1_agreement']}): int8 does not hold for this model (try --qat, or a float profile)")
    return (f"; int8 first diverges from float at layer {first['index']} ({first['op']} {first['label']}, "
            f"cos {first['cos_mean']:.4f}){tried}")


def _status(failures: list[str], figures: dict, collapse) -> str:
    """"ok", or what failed (DESIGN.md's report status, for the manifest)."""
    problems = []
    if collapse.collapsed:
        problems.append("collapsed embeddings")
    if failures:
        problems.append("parity below thresholds")
    if not figures:
        problems.append("not verified")
    return "; ".join(problems) or "ok"
