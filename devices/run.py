"""Run an exported artifact on this device: ``python -m hetero.devices.run ARTIFACT_DIR --inputs X.npy``.

Verifies the artifact against its manifest, embeds the inputs with the artifact's runtime, saves
the embeddings, and measures latency at batch 1 (and at each ``--batch``). Needs numpy and the one
runtime, nothing else (no torch, no hetero). Exit codes: 0 success, 2 user error (one line on
stderr), 1 a bug.

``--latency-out`` holds batch 1's figures ``{"batch": 1, "p50", "p95", "threads", ...}``, or with
``--batch`` a list of them, batch 1 first: both are what ``hetero bench --latency`` reads.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import numpy as np

from hetero.devices._errors import ArtifactError
from hetero.devices.manifest import atomic_write_bytes, check_fingerprint, verify_artifact
from hetero.devices.runtimes import get_runtime, measure_latency

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    """A bad flag is one line on stderr and exit 2, like every other user error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m hetero.devices.run", description=__doc__.splitlines()[0])
    parser.add_argument("artifact_dir", type=Path, help="folder with manifest.json and the artifact")
    parser.add_argument("--inputs", type=Path, required=True,
                        help="preprocessed float32 images [N, C, H, W] (.npy)")
    parser.add_argument("--out", type=Path, help="where to save the embeddings [N, D] (.npy)")
    parser.add_argument("--threads", type=int, help="runtime threads (default: the runtime's)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs before timing")
    parser.add_argument("--repeats", type=int, default=30, help="timed runs per batch size (0: skip timing)")
    parser.add_argument("--batch", type=int, nargs="+", default=[], metavar="N",
                        help="also time these batch sizes (batch 1 is always timed)")
    parser.add_argument("--latency-out", type=Path, help="also save the latency figures (.json)")
    parser.add_argument("--cloud-fingerprint",
                        help="refuse the artifact unless it was trained for this cloud model")
    return parser


def _load_inputs(path: Path) -> np.ndarray:
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"cannot read inputs {path} ({exc}); pass a .npy file") from None
    if x.ndim != 4 or x.dtype.kind != "f":
        raise ArtifactError(f"inputs {path} must be float images [N, C, H, W], got "
                            f"{x.dtype} {list(x.shape)}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    # A NaN image embeds to NaN, which every later similarity would silently absorb.
    _check_finite(x, f"inputs {path}", "write them again with `hetero bench --export-inputs`")
    return x


def _check_finite(array: np.ndarray, what: str, fix: str) -> None:
    bad = ~np.isfinite(array.reshape(len(array), -1)).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ArtifactError(f"{what} hold NaN or infinite values in {len(rows)} of {len(array)} rows "
                            f"(first: row {rows[0]}); {fix}")


def _save_npy(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    atomic_write_bytes(path, buffer.getvalue())


def run(args: argparse.Namespace) -> dict[str, object]:
    """Do what the command line asks; returns the summary printed as JSON."""
    if args.threads is not None and args.threads < 1:
        raise ArtifactError(f"--threads must be at least 1, got {args.threads}")
    if any(b < 1 for b in args.batch):
        raise ArtifactError(f"--batch sizes must be at least 1, got {' '.join(map(str, args.batch))}")
    artifact, manifest = verify_artifact(args.artifact_dir)
    if args.cloud_fingerprint:
        check_fingerprint(manifest, args.cloud_fingerprint)
    backend = manifest.get("format")
    if not isinstance(backend, str):
        raise ArtifactError(f"{args.artifact_dir}/manifest.json names no format; re-export it")
    x = _load_inputs(args.inputs)
    runner = get_runtime(backend).load(artifact, threads=args.threads)
    embeddings = runner.run(x)
    _check_finite(np.asarray(embeddings), f"embeddings of {artifact}", "the artifact or its runtime is broken: re-export it")
    summary: dict[str, object] = {"artifact": str(artifact), "runtime": backend,
                                  "precision": manifest.get("precision"),
                                  "queries": int(len(x)), "embedding_dim": int(embeddings.shape[1])}
    if args.out:
        _save_npy(args.out, embeddings)
        summary["embeddings"] = str(args.out)
    if args.repeats > 0:
        batches = [{**measure_latency(runner, x, warmup=args.warmup, repeats=args.repeats, batch=b),
                    "threads": args.threads} for b in sorted({1, *args.batch})]
        summary["latency_ms"] = batches[0]
        if args.batch:
            summary["latency_ms_batches"] = batches
        if args.latency_out:
            figures = batches if args.batch else batches[0]
            atomic_write_bytes(args.latency_out, (json.dumps(figures, indent=2) + "\n").encode())
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        summary = run(args)
    except (ArtifactError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
