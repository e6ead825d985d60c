"""A gallery index folder: what `hetero index` writes, or a user's own embeddings, and its checks.

Layout::

    manifest.json   format, cloud_fingerprint, items, dim, dtype, data, index settings, files + sha256
    embeddings.npy  float32 or float16 [N, D] unit rows (memory-mapped when read)
    ids.npy         [N] item ids (``hetero index``: a hash of each image's pixels)
    labels.npy      int64 [N] classes (optional: without them only recall is measured)
    index.faiss     the faiss index (optional: built in memory when absent)

A user's own gallery needs only ``embeddings.npy``, ``ids.npy`` and a ``manifest.json`` holding
``{"format": "hetero.index/1", "cloud_fingerprint": "sha256:..."}``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hetero._io import read_json
from hetero.errors import UserError

__all__ = ["INDEX_FORMAT", "MANIFEST", "FILES", "GalleryIndex", "load_index", "is_index_dir", "file_sha256", "image_ids"]

INDEX_FORMAT = "hetero.index/1"
MANIFEST = "manifest.json"
FILES = {"embeddings": "embeddings.npy", "ids": "ids.npy", "labels": "labels.npy", "faiss": "index.faiss"}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """``sha256:<hex>`` of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def image_ids(images: np.ndarray) -> np.ndarray:
    """``<U16`` id of each image: a hash of its pixels, so the same image has the same id anywhere."""
    return np.array([hashlib.blake2b(np.ascontiguousarray(im).tobytes(), digest_size=8).hexdigest() for im in images],
                    dtype="<U16")


def is_index_dir(directory: str | os.PathLike[str]) -> bool:
    """Whether ``directory`` holds a gallery index (a ``manifest.json`` of :data:`INDEX_FORMAT`)."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        return False
    try:
        return read_json(path).get("format") == INDEX_FORMAT
    except (UserError, AttributeError):
        return False


@dataclass
class GalleryIndex:
    """A gallery index folder, its arrays memory-mapped.

    Attributes:
        directory: the folder.
        manifest: ``manifest.json``.
        embeddings: ``[N, D]`` memory map (float32 or float16).
        ids: ``[N]`` item ids.
        labels: ``int64 [N]`` or ``None``.
    """

    directory: Path
    manifest: dict
    embeddings: np.ndarray
    ids: np.ndarray
    labels: np.ndarray | None
    _faiss: object = field(default=None, init=False, repr=False)

    @property
    def fingerprint(self) -> str:
        return self.manifest["cloud_fingerprint"]

    def __len__(self) -> int:
        return len(self.embeddings)

    def check_fingerprint(self, fingerprint: str, what: str) -> None:
        """Refuse queries of a model compatible with another cloud model, in one line."""
        if fingerprint != self.fingerprint:
            raise UserError(
                f"gallery index {self.directory} was built with cloud model {self.fingerprint[:19]}... but {what} is "
                f"compatible with cloud model {fingerprint[:19]}...; its queries cannot search this gallery: index the "
                "gallery with that cloud model (hetero index --cloud DIR) or bench an artifact trained for this one"
            )

    def faiss_index(self):
        """The stored faiss index, or (none stored) one built now with the default kind for the size."""
        from hetero.index._faiss import build_faiss, default_kind, require_faiss, set_search_params

        if self._faiss is None:
            faiss = require_faiss()
            path = self.directory / FILES["faiss"]
            record = self.manifest.get("index") or {}
            if path.is_file():
                self._faiss = faiss.read_index(str(path))
                set_search_params(self._faiss, record.get("kind", "flat"), record.get("params", {}))
            else:
                kind = record.get("kind") or default_kind(len(self))
                self._faiss, params = build_faiss(self.embeddings, kind, record.get("params"))
                self.manifest["index"] = {"kind": kind, "params": params, "file": None}
        return self._faiss

    def index_record(self) -> dict:
        """The faiss kind and settings in use."""
        return dict(self.manifest.get("index") or {})


def _load_array(path: Path, what: str, mmap: bool) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} ({what}) cannot be read as a .npy array ({exc}); rebuild it with hetero index") from None


def load_index(directory: str | os.PathLike[str], verify: bool = True) -> GalleryIndex:
    """Open a gallery index folder: manifest, memory-mapped embeddings, ids, labels.

    Args:
        directory: the folder.
        verify: check each file against the sha256 the manifest records (files it records none
            for, as in a user's own gallery, are not checked).

    Raises:
        UserError: no manifest, another format, a missing, damaged or altered file, or arrays
            that do not agree in length.
    """
    folder = Path(directory)
    if not (folder / MANIFEST).is_file():
        raise UserError(f"--gallery {folder} holds no {MANIFEST}; build one with `hetero index --cloud DIR --data SPEC --out {folder}`")
    manifest = read_json(folder / MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("format") != INDEX_FORMAT or not manifest.get("cloud_fingerprint"):
        raise UserError(f"{folder}/{MANIFEST} is not a hetero gallery index (needs format {INDEX_FORMAT!r} and cloud_fingerprint)")
    files = manifest.get("files") or {}
    for key in ("embeddings", "ids"):
        if not (folder / FILES[key]).is_file():
            raise UserError(f"gallery index {folder} has no {FILES[key]}; rebuild it with hetero index")
    if verify:
        for name, record in files.items():
            path = folder / name
            if record.get("sha256") and (not path.is_file() or file_sha256(path) != record["sha256"]):
                raise UserError(f"gallery index {folder}: {name} is missing or does not match its sha256 in {MANIFEST}; "
                                "the folder was altered: rebuild it with hetero index")
    embeddings = _load_array(folder / FILES["embeddings"], "embeddings", mmap=True)
    ids = _load_array(folder / FILES["ids"], "ids", mmap=False)
    labels = _load_array(folder / FILES["labels"], "labels", mmap=False) if (folder / FILES["labels"]).is_file() else None
    if embeddings.ndim != 2 or not np.issubdtype(embeddings.dtype, np.floating):
        raise UserError(f"gallery index {folder}: embeddings.npy must be a float [N, D] array, got {embeddings.dtype} {embeddings.shape}")
    if ids.shape != (len(embeddings),) or (labels is not None and labels.shape != (len(embeddings),)):
        raise UserError(f"gallery index {folder}: ids.npy{'/labels.npy' if labels is not None else ''} must hold one entry "
                        f"per embedding ({len(embeddings)})")
    return GalleryIndex(folder, manifest, embeddings, ids, None if labels is None else labels.astype(np.int64))
