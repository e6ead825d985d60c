"""int8 per backend and scheme for trained models: PTQ, the accuracy-controlled fallback, QAT.

For each model (an edge folder, its cloud folder and its data) and each int8 backend (ONNX
Runtime, LiteRT), exports through ``hetero.exporting.export_edge`` exactly as ``hetero export``
does, on the export's own parity images:

    fp32        the float artifact (the reference for bytes and latency)
    ptq         static int8, no fallback (kept even when it misses: --allow-drift)
    fallback    static int8 with the accuracy-controlled fallback (hetero export's default)
    qat         quantization-aware fine-tuned model, then static int8 with the fallback
                (only with --qat: it fine-tunes, minutes per model)

and prints parity (cos min, top-1 agreement: the first result's class), cross mAP of the
runtime's queries against the cloud gallery on the parity images, bytes, and batch-32 latency
as a ratio to the fp32 artifact of the same backend (median of paired ratios over rounds in this
process). ``--avx2`` re-runs every artifact (ONNX and TFLite) with ``python -m hetero.devices.run`` under
``qemu-x86_64 -cpu Haswell`` (an AVX2 CPU without AVX-512 or VNNI, where onnxruntime's U8S8
kernels saturate) and prints its cosine against PyTorch there: the int8 figures must not depend
on the CPU.

    python benchmarks/int8_export.py --model NAME:EDGE_DIR:CLOUD_DIR:DATA_SPEC [...] --work DIR [--avx2] [--qat]
    python benchmarks/tables.py record int8_export DIR/results.json   # its table in benchmarks/README.md
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BACKENDS = {"onnx": "x86-server", "tflite": "pixel-8"}


def _profile(backend: str, precision: str, work: Path) -> Path:
    path = work / f"{backend}-{precision}.toml"
    path.write_text(f'name = "bench-{backend}-{precision}"\nbackend = "{backend}"\nprecision = "{precision}"\n')
    return path


def _latency_ratios(runners: dict[str, object], inputs: np.ndarray, rounds: int = 7) -> dict[str, float]:
    """Per artifact, the median over rounds of its batch-32 time over the fp32 artifact's."""
    batch = inputs[:32]
    for runner in runners.values():
        runner.run(batch)
    ratios: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        times = {}
        for name, runner in runners.items():
            start = time.perf_counter()
            runner.run(batch)
            times[name] = time.perf_counter() - start
        for name in runners:
            ratios[name].append(times[name] / times["fp32"])
    return {name: float(np.median(r)) for name, r in ratios.items()}


def _avx2_cos(artifact_dir: Path, inputs: Path, reference: np.ndarray, work: Path) -> str:
    """The artifact's cosine against PyTorch on an emulated AVX2-only CPU (qemu), or why not."""
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        return "qemu-x86_64 not installed (apt install qemu-user)"
    out = work / f"{artifact_dir.name}-avx2.npy"
    proc = subprocess.run([qemu, "-cpu", "Haswell", sys.executable, "-m", "hetero.devices.run", str(artifact_dir),
                           "--inputs", str(inputs), "--out", str(out), "--repeats", "0", "--threads", "1"],
                          cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        return f"failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}"
    got = np.load(out)
    cos = (got * reference).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(reference, axis=1))
    return f"{cos.min():.6f}"


def bench_model(name: str, edge_dir: Path, cloud_dir: Path, spec: str, work: Path, args) -> list[dict]:
    from hetero.data import load_split
    from hetero.devices import load_profile
    from hetero.export import get_backend
    from hetero.exporting import PARITY_IMAGES, _parity_index, artifact_preprocess, export_edge
    from hetero.models import load_cloud, load_edge

    edge, cloud = load_edge(edge_dir), load_cloud(cloud_dir)
    split_info = edge.meta.get("split", {})
    split = load_split(spec, protocol=split_info.get("protocol"), seed=args.seed)
    models = {"": edge}
    if args.qat:
        from hetero.training import quantization_aware_finetune

        started = time.time()
        models["qat"] = quantization_aware_finetune(edge, cloud, split.train, steps=args.qat_steps, seed=args.seed)
        print(f"[{name}] QAT fine-tuning: {time.time() - started:.0f} s", flush=True)
    rows = []
    for backend, device in BACKENDS.items():
        schemes = [("fp32", "", "fp32", False), ("ptq", "", "int8", False), ("fallback", "", "int8", True)]
        if args.qat:
            schemes.append(("qat", "qat", "int8", True))
        runners, results = {}, {}
        for scheme, model_key, precision, fallback in schemes:
            out = work / name / f"{backend}-{scheme}"
            started = time.time()
            manifest = export_edge(models[model_key], load_profile(str(_profile(backend, precision, work))), out,
                                   split.train, split.test, cloud=cloud, allow_drift=True, fallback_float=fallback)
            results[scheme] = (manifest, time.time() - started, out)
            runners[scheme] = get_backend(backend).load(out / manifest["artifact"], threads=1)
        preprocess = artifact_preprocess(edge, load_profile(device))
        index = _parity_index(split.test.labels, PARITY_IMAGES)
        inputs = preprocess(split.test.images[index]).numpy()
        ratios = _latency_ratios(runners, inputs)
        if args.avx2:
            np.save(work / name / "inputs.npy", inputs)
        for scheme, (manifest, seconds, out) in results.items():
            p = manifest["parity"]
            fallback = manifest.get("int8_fallback")
            row = {
                "model": name, "backend": backend, "scheme": scheme, "cos_min": p.get("cos_min"),
                "top1_agreement": p.get("top1_agreement"), "cross_map": p.get("cross_map"),
                "cross_map_torch": p.get("cross_map_torch"), "bytes": manifest["bytes"],
                "latency_x_fp32": ratios[scheme], "passed": manifest["parity_passed"],
                "kept_float": f"{len(fallback['kept_float'])}/{fallback['layers']}" if fallback else "",
                "first_divergence": ((manifest.get("int8_drift") or {}).get("first_divergence") or {}).get("label", ""),
                "export_s": round(seconds, 1),
            }
            if args.avx2:
                reference = (models["qat"] if scheme == "qat" else edge).embed_preprocessed(inputs)
                row["avx2_cos_min"] = _avx2_cos(out, work / name / "inputs.npy", reference, work / name)
            rows.append(row)
            _print_row(row)
    return rows


def _print_row(row: dict) -> None:
    fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    print(f"{row['model']:14s} {row['backend']:6s} {row['scheme']:9s} cos_min {fmt(row['cos_min'], '.6f')} "
          f"top-1 agr {fmt(row['top1_agreement'], '.4f')} cross mAP {fmt(row['cross_map'], '.4f')} "
          f"(torch {fmt(row['cross_map_torch'], '.4f')}) {row['bytes']:>10,} B x{row['latency_x_fp32']:.2f} fp32 b32 "
          f"{'PASS' if row['passed'] else 'MISS'} {('float ' + row['kept_float']) if row['kept_float'] else ''}"
          f"{(' avx2 cos_min ' + row['avx2_cos_min']) if 'avx2_cos_min' in row else ''}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, metavar="NAME:EDGE:CLOUD:DATA",
                        help="a trained edge folder, its cloud folder and its data spec (repeatable)")
    parser.add_argument("--work", type=Path, required=True, help="folder for the artifacts and results.json")
    parser.add_argument("--avx2", action="store_true", help="also run every artifact (ONNX and TFLite) under qemu -cpu Haswell")
    parser.add_argument("--qat", action="store_true", help="also quantization-aware fine-tune each model")
    parser.add_argument("--qat-steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    args.work.mkdir(parents=True, exist_ok=True)
    from hetero.runtime import cpu_description

    print(f"CPU: {cpu_description()}", flush=True)
    rows = []
    for entry in args.model:
        name, edge_dir, cloud_dir, spec = entry.split(":", 3)
        rows += bench_model(name, Path(edge_dir), Path(cloud_dir), spec, args.work, args)
    (args.work / "results.json").write_text(json.dumps({"cpu": cpu_description(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
