"""`hetero bench --device all`: export one edge model for every device, bench each, compare.

Writes ``OUT/<device>/artifact`` (the export), ``OUT/<device>/report.json`` (the bench),
``OUT/comparison.{json,md}`` and ``OUT/index.html``. A device whose converter or runtime cannot
run here still gets its row, with the reason as its status.
"""

from __future__ import annotations

import os
from pathlib import Path

from hetero._io import write_json, write_text
from hetero.bench._core import bench_artifact, load_artifact, runtime_label
from hetero.bench._gallery import load_gallery
from hetero.bench._html import comparison_html
from hetero.bench._markdown import comparison_markdown
from hetero.errors import UserError

__all__ = ["select_devices", "bench_devices", "comparison_row", "device_folder", "RESERVED_FOLDERS"]


#: Folders of OUT that are not a device's: a profile of that name would write into them.
RESERVED_FOLDERS = ("gallery",)


def select_devices(spec: str) -> list[str]:
    """``all`` or a comma list of profile names (or .toml paths), each checked to load.

    Each profile's name becomes the folder ``OUT/<name>``, so the names must be distinct and none
    may be a folder bench itself writes (:data:`RESERVED_FOLDERS`).
    """
    from hetero.devices import list_profiles, load_profile

    names = list_profiles() if spec.strip() == "all" else [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise UserError("--device needs 'all' or a comma list of profile names (see `hetero devices`)")
    seen: dict[str, str] = {}
    for name in names:
        profile = load_profile(name)  # a ProfileError names the bad one and the choices
        if profile.name in RESERVED_FOLDERS:
            raise UserError(f"device profile {name} is named {profile.name!r}, a folder bench writes itself; rename the profile")
        if profile.name in seen:
            raise UserError(f"device profiles {seen[profile.name]} and {name} are both named {profile.name!r}; "
                            "each device needs its own name (its folder under --out)")
        seen[profile.name] = name
    return names


def device_folder(out: Path, name: str) -> Path:
    """``out/<name>``, the folder of one device's export and bench.

    The name comes from a profile file: it is checked again here, where it becomes a path, so a
    profile loaded by another route can never place files outside ``out``.
    """
    from hetero.devices import ProfileError
    from hetero.devices._profile import check_name

    folder = out / check_name(name)
    if folder.resolve().parent != out.resolve():
        raise ProfileError(f"device name {name!r} does not name a folder inside {out}; rename the profile")
    return folder


def comparison_row(device: str, backend: str, precision: str, status: str, report: dict | None = None,
                   artifact_bytes: int | None = None, threads: int | None = None) -> dict:
    """One line of the comparison table, from a device's report (or only its status)."""
    row = {"device": device, "backend": backend, "precision": precision, "status": status,
           "artifact_bytes": artifact_bytes, "threads": threads}
    if report is None:
        return row
    p, lat = report["parity"], report["latency_ms"]
    larger = [f for f in report.get("latency_ms_batches", []) if f["batch"] > 1]
    row.update(
        backend=report.get("runtime", {}).get("label", backend),
        cross_map_runtime=report["retrieval"]["cross_runtime"]["map"],
        cross_map_torch=report["retrieval"]["cross_torch"]["map"],
        homogeneous_map=report["retrieval"]["homogeneous_edge"]["map"],
        paragon_map=report["retrieval"]["paragon"]["map"],
        cos_min=p["cos_min"],
        top1_agreement=p.get("top1_agreement"),
        top1_item_agreement=p.get("top1_item_agreement"),
        nfr=p.get("nfr"),
        p50_ms=lat.get("p50"),
        p95_ms=lat.get("p95"),
        batch_p50=f"{larger[-1]['p50']:.3f} (b{larger[-1]['batch']})" if larger else None,
        threads=lat.get("threads", threads),
        artifact_bytes=report["edge"]["artifact_bytes"],
    )
    return row


def _reusable(artifact_dir: Path, edge_file: Path) -> bool:
    """The folder already holds a verified artifact exported from this very edge model."""
    from hetero.devices import ArtifactError, sha256_file, verify_artifact
    from hetero.devices.manifest import verify_source_model

    try:
        verify_source_model(artifact_dir, verify_artifact(artifact_dir)[1])
    except ArtifactError:
        return False
    copy = artifact_dir / "edge.pt"
    return copy.is_file() and sha256_file(copy) == sha256_file(edge_file)


def _status(manifest: dict, report: dict | None = None) -> str:
    """``ok``, or what failed: the export's parity, then the bench report's own verdict."""
    from hetero.devices import parity_failures

    if manifest.get("parity_passed") is False:
        return "parity below export thresholds (" + "; ".join(parity_failures(manifest["parity"], manifest["parity_thresholds"])) + ")"
    if report is not None:
        if report.get("parity_passed") is False:
            return "parity below thresholds (" + "; ".join(report.get("parity_failures") or []) + ")"
        status = report.get("status")
        if isinstance(status, str) and status != "ok":
            return status
        if report.get("compatible") is False:
            return "not compatible"
    return "ok"


def _one_device(name: str, edge_path: Path, cloud, split, gallery, out: Path, options: dict) -> dict:
    from hetero.devices import load_profile
    from hetero.devices.runtimes import get_runtime
    from hetero.export import get_backend
    from hetero.stages import export_for_device

    profile = load_profile(name)
    backend = get_backend(profile.backend)
    threads = options["threads"] or profile.threads
    ok, reason = backend.available()
    if not ok:
        return comparison_row(profile.name, profile.backend, profile.precision, f"not exported: {reason}", threads=threads)
    folder = device_folder(out, profile.name)
    artifact_dir = folder / "artifact"
    edge_file = edge_path / "edge.pt" if edge_path.is_dir() else edge_path
    try:
        if _reusable(artifact_dir, edge_file):
            print(f"[{profile.name}] reusing {artifact_dir}")
        else:
            print(f"[{profile.name}] exporting {profile.backend} {profile.precision}")
            # Drifted artifacts are kept: the comparison shows how far they drift.
            export_for_device(edge_path, name, artifact_dir, split.test.spec, split.protocol, split.seed, cloud, allow_drift=True,
                              split=split)
        inputs = load_artifact(artifact_dir, cloud)
    except UserError as exc:
        return comparison_row(profile.name, profile.backend, profile.precision, f"export failed: {exc}", threads=threads)
    manifest = inputs.manifest
    run_ok, run_reason = get_runtime(inputs.runtime).available()
    if not run_ok:
        engine = (manifest.get("notes") or {}).get("engine", "")
        status = f"engine {engine}" if str(engine).startswith("not built") else f"runtime not available here: {run_reason}"
        return comparison_row(profile.name, profile.backend, profile.precision, f"{manifest['artifact']} written; {status}",
                              artifact_bytes=manifest["bytes"], threads=threads)
    print(f"[{profile.name}] benching on {runtime_label(profile.backend, None)}")
    try:
        report = bench_artifact(inputs, cloud, split.test, folder, threads=threads, gallery=gallery,
                                batch_sizes=options["batch_sizes"], warmup=options["warmup"], repeats=options["repeats"],
                                protocol=split.protocol, seed=split.seed)
    except UserError as exc:
        return comparison_row(profile.name, profile.backend, profile.precision, f"bench failed: {exc}",
                              artifact_bytes=manifest["bytes"], threads=threads)
    return comparison_row(profile.name, profile.backend, profile.precision, _status(manifest, report), report)


def bench_devices(
    edge_path: str | os.PathLike[str],
    cloud,
    split,
    devices: list[str],
    out_dir: str | os.PathLike[str],
    gallery_dir: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    batch_sizes: tuple[int, ...] | None = None,
    warmup: int = 5,
    repeats: int = 30,
) -> list[dict]:
    """Export, bench and compare; returns the comparison rows (also written to ``out_dir``).

    Args:
        edge_path: ``edge.pt`` or its folder.
        cloud: the cloud model (``None`` if ``gallery_dir`` holds its cached gallery).
        split: the data split (the test images are queries and gallery).
        devices: profile names (:func:`select_devices`).
        out_dir: the output folder.
        gallery_dir: the gallery cache (default ``out_dir/gallery``).
        threads: runtime threads for every device (default: each profile's).
        batch_sizes: larger batches to time (default: each profile's).
        warmup, repeats: untimed and timed runs per batch size.
    """
    from hetero.models import load_edge

    edge_path, out = Path(edge_path), Path(out_dir)
    fingerprint = load_edge(edge_path).cloud_fingerprint
    if cloud is not None and cloud.fingerprint != fingerprint:
        raise UserError(
            f"--cloud is model {cloud.fingerprint[:19]}..., but the edge model was trained for {fingerprint[:19]}...; "
            "pass the cloud model it was trained against"
        )
    gallery = load_gallery(gallery_dir or out / "gallery", split.test, split.protocol, split.seed, fingerprint, cloud)
    options = {"threads": threads, "batch_sizes": batch_sizes, "warmup": warmup, "repeats": repeats}
    rows = [_one_device(name, edge_path, cloud, split, gallery, out, options) for name in devices]
    write_json(out / "comparison.json", rows)
    write_text(out / "comparison.md", comparison_markdown(rows))
    comparison_html(rows, out, title=f"hetero bench: {split.test.spec}, {len(split.test.labels)} queries")
    return rows
