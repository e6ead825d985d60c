"""`hetero index`: embed a gallery with the cloud model in resumable chunks, then index it.

Each chunk of images is embedded and written atomically as its own part file under
``OUT/.parts/``; a run killed at any point (kill -9 included) leaves only whole parts, and the
next run with the same settings embeds only the chunks that have none. Only one chunk's
embeddings are in memory at a time. Once every part exists they are copied into one
memory-mappable ``embeddings.npy``, the faiss index is built from it in chunks, the manifest
(cloud fingerprint, sha256 of every file) is written last and the parts are removed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

import numpy as np

from hetero._io import atomic_path, read_json, save_npy, write_json
from hetero.errors import UserError
from hetero.index._faiss import INDEX_KINDS, build_faiss, default_kind, require_faiss
from hetero.index._store import FILES, INDEX_FORMAT, MANIFEST, file_sha256, image_ids
from hetero.metrics import check_embeddings, l2_normalize
from hetero.runtime import progress

__all__ = ["build_index", "DTYPES", "PARTS"]

DTYPES = ("float32", "float16")
PARTS = ".parts"
_PLAN_FORMAT = "hetero.index-plan/1"


def _plan(cloud, data, dtype: str, chunk: int) -> dict:
    """What the parts depend on: a part made under another plan is never reused."""
    return {
        "format": _PLAN_FORMAT,
        "cloud_fingerprint": cloud.fingerprint,
        "data": {"spec": data.spec, "items": int(len(data.labels)),
                 "labels_sha": hashlib.sha256(np.asarray(data.labels, np.int64).tobytes()).hexdigest()},
        "dtype": dtype,
        "chunk": int(chunk),
    }


def _part_path(parts: Path, i: int) -> Path:
    return parts / f"part-{i:06d}.npy"


def _part_done(path: Path, rows: int, dim: int, dtype: str) -> bool:
    """A part counts when it loads with the expected shape and dtype (a torn file never does: writes are atomic)."""
    if not path.is_file():
        return False
    try:
        part = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return False
    return part.shape == (rows, dim) and part.dtype == np.dtype(dtype)


def _embed_chunk(cloud, images: np.ndarray, batch_size: int) -> np.ndarray:
    """One chunk's unit cloud embeddings (float32)."""
    return l2_normalize(check_embeddings(cloud.embed(images, batch_size), "cloud output", dim=cloud.embed_dim))


def build_index(
    cloud,
    data,
    out_dir: str | os.PathLike[str],
    dtype: str = "float32",
    kind: str | None = None,
    params: dict | None = None,
    chunk: int = 4096,
    batch_size: int = 256,
    seed: int = 0,
) -> dict:
    """Embed every image of ``data`` with ``cloud`` and write a gallery index folder.

    Args:
        cloud: the cloud model (:class:`hetero.models.CloudModel`), already on its device.
        data: the gallery images (:class:`hetero.data.Dataset`).
        out_dir: the index folder.
        dtype: ``float32`` or ``float16`` storage of the embeddings.
        kind: ``flat``, ``ivf`` or ``hnsw``; default by size (:func:`hetero.index.default_kind`).
        params: faiss settings overriding the defaults.
        chunk: images per part file (the unit of resumption).
        batch_size: images per forward pass.
        seed: IVF's training sample.

    Returns:
        The manifest, plus ``resumed_chunks`` (parts found from an earlier run) and ``seconds``.

    Raises:
        UserError: a bad setting, or ``out_dir`` holds an index or parts of another gallery.
    """
    if dtype not in DTYPES:
        raise UserError(f"--dtype {dtype!r}: use float32 or float16")
    if kind is not None and kind not in INDEX_KINDS:
        raise UserError(f"--index {kind!r}: use one of {', '.join(INDEX_KINDS)}")
    if chunk < 1 or batch_size < 1:
        raise UserError("--chunk and --batch-size must be at least 1")
    require_faiss()
    out, started = Path(out_dir), time.perf_counter()
    parts = out / PARTS
    plan = _plan(cloud, data, dtype, chunk)
    n, dim = len(data.labels), cloud.embed_dim
    kind = kind or default_kind(n)
    if (out / MANIFEST).is_file():
        raise UserError(f"--out {out} already holds a gallery index ({MANIFEST}); pass a new --out folder (or delete it to rebuild)")
    if (parts / "plan.json").is_file():
        if read_json(parts / "plan.json") != plan:
            raise UserError(f"--out {out} holds the unfinished parts of another index (other cloud model, data, --dtype or "
                            f"--chunk); pass a new --out, or delete {parts} to start over")
    else:
        write_json(parts / "plan.json", plan)
    chunks = [(i, s, min(n, s + chunk)) for i, s in enumerate(range(0, n, chunk))]
    done = {i for i, s, e in chunks if _part_done(_part_path(parts, i), e - s, dim, dtype)}
    resumed_rows = sum(e - s for i, s, e in chunks if i in done)
    if done:
        print(f"resuming: {len(done)} of {len(chunks)} chunks ({resumed_rows} images) already embedded in {parts}", flush=True)
    bar = progress(total=n, initial=resumed_rows, unit="img", desc="embedding")
    for i, s, e in chunks:
        if i in done:
            continue
        save_npy(_part_path(parts, i), _embed_chunk(cloud, data.images[s:e], batch_size).astype(dtype))
        bar.update(e - s)
    bar.close()
    embedded_at = time.perf_counter()
    _assemble(out / FILES["embeddings"], parts, chunks, dim, dtype)
    save_npy(out / FILES["labels"], np.asarray(data.labels, dtype=np.int64))
    save_npy(out / FILES["ids"], image_ids(data.images))
    bar = progress(total=n, unit="item", desc=f"faiss {kind}")
    index, used = build_faiss(np.load(out / FILES["embeddings"], mmap_mode="r"), kind, params, seed=seed, progress=bar.update)
    bar.close()
    faiss = require_faiss()
    with atomic_path(out / FILES["faiss"]) as tmp:
        faiss.write_index(index, str(tmp))
    indexed_at = time.perf_counter()
    manifest = {
        "format": INDEX_FORMAT,
        "cloud_fingerprint": cloud.fingerprint,
        "items": int(n),
        "dim": int(dim),
        "dtype": dtype,
        "normalized": True,
        "ids": "blake2b-64 of each image's float32 pixels (the same image has the same id in queries)",
        "data": {"spec": data.spec, "items": int(n), "classes": int(np.unique(data.labels).size)},
        "index": {"kind": kind, "params": used, "file": FILES["faiss"]},
        "seconds": {"embed": round(embedded_at - started, 3), "index": round(indexed_at - embedded_at, 3)},
        "files": {name: {"sha256": file_sha256(out / name), "bytes": (out / name).stat().st_size}
                  for name in (FILES["embeddings"], FILES["ids"], FILES["labels"], FILES["faiss"])},
    }
    write_json(out / MANIFEST, manifest)  # last: a folder without it is unfinished
    shutil.rmtree(parts, ignore_errors=True)
    return {**manifest, "resumed_chunks": len(done), "chunks": len(chunks), "total_seconds": round(time.perf_counter() - started, 3)}


def _assemble(path: Path, parts: Path, chunks, dim: int, dtype: str) -> None:
    """Copy the parts into one ``.npy`` written in place through a memory map (one part in memory)."""
    n = chunks[-1][2] if chunks else 0
    with atomic_path(path) as tmp:
        target = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.dtype(dtype), shape=(n, dim))
        for i, s, e in chunks:
            target[s:e] = np.load(_part_path(parts, i), mmap_mode="r")
        target.flush()
        del target
