"""Artifact manifests: what an exported model is, and proof that the file is the one exported.

Every artifact directory holds the artifact (a file, or a directory such as a Core ML
``.mlpackage``) and ``manifest.json``, whose keys are :class:`Manifest` (docs/design.md describes
them for users).

hetero fills most keys; this module writes, reads and verifies them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypedDict

from hetero.devices._atomic import atomic_path, atomic_write_bytes
from hetero.devices._errors import ArtifactError
from hetero.devices._keys import check_keys

__all__ = [
    "MANIFEST_NAME",
    "Manifest",
    "SOURCE_MODEL",
    "record_source_model",
    "verify_source_model",
    "artifact_bytes",
    "artifact_entry",
    "atomic_path",
    "atomic_write_bytes",
    "check_fingerprint",
    "check_manifest",
    "read_manifest",
    "sha256_file",
    "verify_artifact",
    "write_manifest",
]

MANIFEST_NAME = "manifest.json"
#: The PyTorch model an artifact was exported from, kept beside it (the bench compares against it).
SOURCE_MODEL = "edge.pt"
_CHUNK = 1 << 20


class _ManifestRequired(TypedDict):
    """The keys every manifest has (see :class:`Manifest`)."""

    format: str  # backend name, also the runtime's: onnx | tflite | coreml | tensorrt
    artifact: str  # artifact file (or directory) name, relative to the manifest
    sha256: str  # of the artifact (directories: see sha256_file)
    bytes: int
    device: str
    precision: str  # fp32 | fp16 | int8
    input_shape: list[int]  # [C, H, W] of one image
    dynamic_batch: bool  # the batch is free
    preprocess: dict[str, Any]  # how images were resized and normalised (hetero.data.Preprocess)
    embedding_dim: int  # D of the float32 [N, D] output
    cloud_fingerprint: str  # "sha256:..." of the cloud model the embeddings are compatible with
    edge: dict[str, Any]
    parity: dict[str, float]  # cos_min, cos_mean, max_abs, top1_agreement, top1_item_agreement, nfr, ...
    parity_thresholds: dict[str, float]
    parity_thresholds_from: str
    parity_passed: bool | None
    verified: bool
    not_verified_reason: str | None
    allow_drift: bool  # kept despite failing parity
    parity_data: dict[str, Any]
    collapse: dict[str, Any]
    status: str
    cross_map_at_export: float | None
    notes: dict[str, str]
    tool_versions: dict[str, str]  # {"torch": ..., "onnxruntime": ...}; notes: the backend's remarks
    created: str


class Manifest(_ManifestRequired, total=False):
    """The keys of ``manifest.json`` (docs/design.md names the same; a test holds them in step).

    ``hetero export`` passes its manifest through :func:`check_manifest` before writing it, so a
    new key is added here (and documented) first.
    """

    quantization: str
    int8_drift: dict[str, Any]
    int8_fallback: dict[str, Any]
    int8_fallback_failed: list[dict[str, Any]]
    fp16_fallback: dict[str, Any]  # fp16 missed parity: the fp32 artifact tried instead (and "used" if it passed)
    int8_fp32_fallback: dict[str, Any]  # the same for int8, after the layer fallback (or where it cannot help)
    source_model: dict[str, Any]  # {"file": "edge.pt", "sha256", "bytes"}: the bench's reference


def check_manifest(manifest: dict[str, Any]) -> Manifest:
    """``manifest`` as a :class:`Manifest`, its keys checked against the schema.

    Raises:
        ValueError: A required key is missing or a key is not in the schema (a bug in the exporter).
    """
    check_keys(Manifest, manifest, "manifest")
    return manifest  # type: ignore[return-value]  # checked above


def write_manifest(directory: str | Path, manifest: Mapping[str, Any]) -> Path:
    """Write ``manifest`` as ``directory/manifest.json``, atomically; returns its path."""
    path = Path(directory) / MANIFEST_NAME
    text = json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))
    return path


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """Read ``directory/manifest.json``.

    Raises:
        ArtifactError: The manifest is missing or is not a JSON object.
    """
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        raise ArtifactError(f"{path} does not exist; pass a directory written by `hetero export`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path} is not valid JSON ({exc}); re-export the model") from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{path} is not a JSON object; re-export the model")
    return manifest


def _files(path: Path) -> list[Path]:
    return sorted((p for p in path.rglob("*") if p.is_file()), key=lambda p: p.relative_to(path).as_posix())


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, or of a directory artifact.

    A directory hashes each file's relative POSIX path, size and content in sorted path order, so
    the digest is deterministic across machines and catches renamed, added or removed files.
    """
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_dir():
        for file in _files(path):
            rel = file.relative_to(path).as_posix().encode("utf-8")
            digest.update(rel + b"\0" + str(file.stat().st_size).encode() + b"\0")
            _update(digest, file)
    else:
        _update(digest, path)
    return digest.hexdigest()


def _update(digest: Any, file: Path) -> None:
    with open(file, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)


def artifact_bytes(path: str | Path) -> int:
    """Size on disk of a file, or the sum over a directory artifact's files."""
    path = Path(path)
    return sum(f.stat().st_size for f in _files(path)) if path.is_dir() else path.stat().st_size


def artifact_entry(path: str | Path) -> dict[str, Any]:
    """The manifest keys that identify an artifact: ``artifact``, ``sha256`` and ``bytes``."""
    path = Path(path)
    return {"artifact": path.name, "sha256": sha256_file(path), "bytes": artifact_bytes(path)}


def verify_artifact(directory: str | Path) -> tuple[Path, dict[str, Any]]:
    """Check that the artifact named by the manifest exists and matches its sha256.

    Returns:
        The artifact's path and the manifest.

    Raises:
        ArtifactError: The manifest is missing or incomplete, or the artifact is missing or corrupt.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    for key in ("artifact", "sha256"):
        if not isinstance(manifest.get(key), str):
            raise ArtifactError(f"{directory / MANIFEST_NAME} lacks {key!r}; re-export the model")
    name = manifest["artifact"]
    # The name comes from a file a user may have edited: keep it inside the artifact directory.
    if Path(name).name != name or name in ("", ".", ".."):
        raise ArtifactError(f"manifest artifact name {name!r} must be a plain file name; re-export it")
    path = directory / name
    _check_file(path, manifest["sha256"], "artifact")
    # On a device the folder may travel without the PyTorch model; where it is present, it is checked.
    if (directory / SOURCE_MODEL).exists() and "source_model" in manifest:
        verify_source_model(directory, manifest)
    return path, manifest


def record_source_model(directory: str | Path) -> dict[str, Any]:
    """Add the sha256 and size of ``directory/edge.pt`` to its manifest (rewritten atomically).

    Returns:
        The updated manifest.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    source = directory / SOURCE_MODEL
    manifest["source_model"] = {"file": SOURCE_MODEL, "sha256": sha256_file(source), "bytes": source.stat().st_size}
    write_manifest(directory, manifest)
    return manifest


def verify_source_model(directory: str | Path, manifest: dict[str, Any]) -> Path:
    """Check ``directory/edge.pt`` against the sha256 its manifest records; returns its path.

    Raises:
        ArtifactError: The manifest records no source model (an export older than this check),
            or ``edge.pt`` is missing or differs from the one exported.
    """
    directory = Path(directory)
    record = manifest.get("source_model")
    if not isinstance(record, dict) or not isinstance(record.get("sha256"), str):
        raise ArtifactError(f"{directory / MANIFEST_NAME} records no sha256 for {SOURCE_MODEL}; re-export the model")
    path = directory / SOURCE_MODEL
    _check_file(path, record["sha256"], "PyTorch reference")
    return path


def _check_file(path: Path, expected: str, what: str) -> None:
    """``path`` exists and hashes to ``expected``; else an :class:`ArtifactError` naming ``what``."""
    if not path.exists():
        raise ArtifactError(f"{what} {path} is missing; re-export it")
    actual = sha256_file(path)
    if actual != expected:
        raise ArtifactError(f"{what} {path} is corrupt: sha256 mismatch (expected {expected}, got {actual}); re-export it")


def check_fingerprint(manifest: dict[str, Any], fingerprint: str) -> None:
    """Refuse an artifact that is not compatible with the cloud model ``fingerprint``.

    Raises:
        ArtifactError: The manifest's ``cloud_fingerprint`` differs (or is absent).
    """
    expected = manifest.get("cloud_fingerprint")
    if expected != fingerprint:
        raise ArtifactError(
            f"artifact was trained for cloud model {expected}, not {fingerprint}; its embeddings "
            "are not comparable with this gallery: use the matching edge model or re-train it"
        )
