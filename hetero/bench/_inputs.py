"""The runner path: queries for a real device, and its embeddings back into a report.

``hetero bench --export-inputs DIR`` writes the preprocessed queries exactly as the direct path
feeds them to the runtime; ``python -m hetero.devices.run`` (numpy and the runtime only) embeds them on
the device; ``hetero bench --embeddings emb.npy --latency latency.json`` builds the report.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import numpy as np

from hetero._io import save_npy, write_json, write_text
from hetero.data import Preprocess
from hetero.errors import UserError

__all__ = ["INPUTS_FORMAT", "query_inputs", "export_inputs", "load_device_embeddings"]

INPUTS_FORMAT = "hetero.bench-inputs/1"


def query_inputs(preprocess: Preprocess, images: np.ndarray) -> np.ndarray:
    """The test images as the artifact takes them: float32 ``[N, C, H, W]``, preprocessed."""
    return np.ascontiguousarray(np.concatenate([b.numpy() for b in preprocess.batches(images)]), dtype=np.float32)


def export_inputs(inputs, test, protocol: str, seed: int, out_dir: str | os.PathLike[str], threads: int | None) -> dict:
    """Write ``queries.npy``, ``labels.npy``, ``inputs.json`` and ``README.md`` for a device run.

    Args:
        inputs: the verified artifact (:class:`hetero.bench.BenchInputs`).
        test: the test split (the queries).
        protocol, seed: how the split was made (the report must be rebuilt with the same).
        out_dir: the folder to write.
        threads: the runtime threads the runner should use.

    Returns:
        The ``inputs.json`` record.
    """
    out = Path(out_dir)
    x = query_inputs(inputs.preprocess, test.images)
    save_npy(out / "queries.npy", x)
    save_npy(out / "labels.npy", np.asarray(test.labels, dtype=np.int64))
    manifest = inputs.manifest
    runner = ["python", "-m", "hetero.devices.run", str(inputs.directory), "--inputs", str(out / "queries.npy"),
              "--out", "emb.npy", "--latency-out", "latency.json",
              "--cloud-fingerprint", manifest["cloud_fingerprint"]]
    if threads:
        runner += ["--threads", str(threads)]
    bench = ["hetero", "bench", "--artifact", str(inputs.directory), "--data", test.spec, "--protocol", protocol,
             "--seed", str(seed), "--cloud", "CLOUD_DIR", "--embeddings", "emb.npy", "--latency", "latency.json",
             "--out", "REPORT_DIR"]
    record = {
        "format": INPUTS_FORMAT,
        "queries": "queries.npy",
        "labels": "labels.npy",
        "shape": list(x.shape),
        "data": {"spec": test.spec, "protocol": protocol, "seed": int(seed), "queries": int(len(x))},
        "artifact": {k: manifest.get(k) for k in ("artifact", "sha256", "format", "precision", "device")},
        "cloud_fingerprint": manifest["cloud_fingerprint"],
        "preprocess": inputs.preprocess.to_dict(),
        "threads": threads,
        "run_on_device": shlex.join(runner),
        "then_here": shlex.join(bench),
    }
    write_json(out / "inputs.json", record)
    write_text(out / "README.md", _readme(record))
    return record


def _readme(record: dict) -> str:
    a = record["artifact"]
    return "\n".join(
        [
            f"# Queries for {a['device']} ({a['format']}, {a['precision']})",
            "",
            f"`queries.npy`: {record['data']['queries']} test images of `{record['data']['spec']}` "
            f"(protocol {record['data']['protocol']}, seed {record['data']['seed']}), preprocessed, "
            f"float32 {record['shape']}. `labels.npy`: their classes.",
            "",
            "1. Copy to the device: the artifact folder (the artifact and its `manifest.json`), `queries.npy`, "
            "and hetero's `devices/` package as `hetero/devices/` (it needs numpy and the runtime only, no torch; "
            "`hetero/` needs nothing else), or `pip install hetero` there.",
            "2. On the device, from the folder holding `hetero/` (adjust the paths):",
            "",
            f"       {record['run_on_device']}",
            "",
            "3. Bring `emb.npy` and `latency.json` back and build the report with the same data, protocol and seed:",
            "",
            f"       {record['then_here']}",
            "",
        ]
    )


def load_device_embeddings(path: str | os.PathLike[str], queries: int) -> np.ndarray:
    """Embeddings made elsewhere by ``hetero.devices.run``, one row per test query."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"--embeddings {p} does not exist; run `python -m hetero.devices.run ... --out {p.name}` on the device")
    try:
        emb = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UserError(f"--embeddings {p} is not a .npy array ({exc}); pass the file hetero.devices.run wrote") from None
    if emb.ndim != 2 or len(emb) != queries:
        raise UserError(
            f"--embeddings holds an array of shape {list(emb.shape)} but the test split has {queries} queries; "
            "embed the queries.npy written by --export-inputs with the same --data, --protocol and --seed"
        )
    return emb
