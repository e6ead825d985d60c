"""How much top-1 agreement can an int8 edge model keep on a gallery? (issue "Export to every device")

Can an int8 artifact rank the same gallery image first as its PyTorch model for 98% of the queries
(``top1_item_agreement``, which a profile's ``[parity]`` table can require; by default int8 is
judged on ``top1_agreement``, the first result's class, the retrieval decision)? This benchmark measures what stands in the way on a given
edge model and data, in four parts, all on the export's own parity retrieval (leave-one-out over
the parity images, cloud gallery):

1. the gallery: the gap between the reference's first and second similarity per query;
2. calibrated noise: agreement after adding isotropic noise of a known cosine to the queries;
3. simulated quantization in PyTorch: int8 per-channel weights only, 8-bit and 16-bit activations
   only, both, and every layer's input activations alone;
4. the real int8 artifacts of ``hetero export`` (ONNX Runtime QDQ and LiteRT full-integer).

The fake quantization of part 3 is written by hand (a rounding of each Conv2d/Linear input to a
min/max-calibrated uint8 grid and of each weight row to a symmetric int8 grid): it models the
runtimes' schemes well enough to rank the error sources, which is all it is for.

    python benchmarks/int8_agreement.py --work runs/int8 [--edge DIR --cloud DIR] [--data digits] [--out FILE]

``--out`` writes one row per perturbation (``python benchmarks/tables.py record int8_agreement FILE``).
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def _norm(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


class ParityRetrieval:
    """The parity retrieval of ``hetero export``: PyTorch queries and the cloud gallery."""

    def __init__(self, reference: np.ndarray, gallery: np.ndarray, labels: np.ndarray) -> None:
        self.reference, self.gallery, self.labels = _norm(reference), _norm(gallery), labels
        self.top1 = self._top1(self.reference)

    def _scores(self, queries: np.ndarray) -> np.ndarray:
        scores = _norm(queries) @ self.gallery.T
        np.fill_diagonal(scores, -np.inf)
        return scores

    def _top1(self, queries: np.ndarray) -> np.ndarray:
        return self._scores(queries).argmax(1)

    def compare(self, queries: np.ndarray) -> dict[str, float]:
        cos = (_norm(queries) * self.reference).sum(1)
        top1 = self._top1(queries)
        return {"cos_min": float(cos.min()), "cos_mean": float(cos.mean()), "agreement": float((top1 == self.top1).mean()),
                "class_agreement": float((self.labels[top1] == self.labels[self.top1]).mean())}


class FakeQuant:
    """Hand-written int8 simulation of an edge network's Conv2d/Linear layers (module docstring)."""

    def __init__(self, net: torch.nn.Module, calibration: torch.Tensor) -> None:
        self.net = net.eval()
        self.layers = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
        self.ranges: dict[torch.nn.Module, tuple[float, float]] = {}

        def observe(module, inputs, _output):
            lo, hi = self.ranges.get(module, (0.0, 0.0))
            self.ranges[module] = (min(lo, inputs[0].min().item()), max(hi, inputs[0].max().item()))

        hooks = [m.register_forward_hook(observe) for m in self.layers]
        with torch.no_grad():
            net(calibration)
        for hook in hooks:
            hook.remove()

    def _activation_hook(self, bits: int):
        levels = 2 ** bits - 1

        def hook(module, inputs):
            lo, hi = self.ranges[module]
            scale = max(hi - lo, 1e-12) / levels
            zero = round(-lo / scale)
            return ((torch.clamp(torch.round(inputs[0] / scale) + zero, 0, levels) - zero) * scale,)

        return hook

    @contextlib.contextmanager
    def quantized(self, weights: bool, activation_bits: int | None, layers: set[int] | None = None):
        chosen = [m for i, m in enumerate(self.layers) if layers is None or i in layers]
        saved = {m: m.weight.data.clone() for m in chosen} if weights else {}
        hooks = [m.register_forward_pre_hook(self._activation_hook(activation_bits)) for m in chosen] if activation_bits else []
        for m in saved:
            w = m.weight.data
            scale = (w.abs().flatten(1).max(1).values.clamp_min(1e-12) / 127).view(-1, *[1] * (w.dim() - 1))
            m.weight.data = torch.round(w / scale).clamp(-127, 127) * scale
        try:
            yield
        finally:
            for hook in hooks:
                hook.remove()
            for m, w in saved.items():
                m.weight.data = w

    def embed(self, inputs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.net(torch.from_numpy(inputs)).numpy()


def _line(name: str, figures: dict[str, float]) -> str:
    return (f"{name:<40} {figures['cos_min']:>9.6f} {figures['cos_mean']:>9.6f} {figures['agreement']:>9.4f} "
            f"{figures['class_agreement']:>9.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="runs/int8", help="where the demo models and artifacts go")
    parser.add_argument("--edge", help="an edge model folder (default: the demo's, trained in --work)")
    parser.add_argument("--cloud", help="its cloud model folder")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--model", default="demo", help="the model's name in the rows written by --out")
    parser.add_argument("--out", default=None, metavar="FILE.json", help="also write one row per perturbation")
    args = parser.parse_args()

    import hetero.exporting as exporting
    from hetero.data import load_split
    from hetero.devices import load_profile
    from hetero.models import load_cloud, load_edge
    from hetero.runtime import seed_everything

    seed_everything(0)
    work = Path(args.work)
    if not (args.edge and args.cloud):
        subprocess.run([sys.executable, "-m", "hetero", "demo", "--out", str(work / "demo"), "--quiet"], check=True)
    edge = load_edge(args.edge or work / "demo" / "edge")
    cloud = load_cloud(args.cloud or work / "demo" / "cloud")
    split = load_split(args.data, seed=0)
    index = exporting._parity_index(split.test.labels, exporting.PARITY_IMAGES)
    inputs = edge.preprocess(split.test.images[index]).numpy()
    retrieval = ParityRetrieval(edge.embed_preprocessed(inputs), cloud.embed(split.test.images[index]), split.test.labels[index])

    gaps = exporting.top1_gaps(retrieval.reference, retrieval.gallery)
    gap_quantiles = [float(q) for q in np.quantile(gaps, [0.02, 0.1, 0.5])]
    rows: list[dict] = []

    def _row(name: str, figures: dict[str, float]) -> str:
        rows.append({"model": args.model, "data": args.data, "queries": len(inputs), "gap_quantiles": gap_quantiles,
                     "perturbation": name, **figures})
        return _line(name, figures)

    print(f"{args.data}: {len(inputs)} parity queries, cloud gallery of the same images (leave-one-out)")
    print("gap between the first two similarities, quantiles 2/10/50%:",
          " ".join(f"{q:.6f}" for q in gap_quantiles))
    print(f"{'perturbation':<40} {'cos min':>9} {'cos mean':>9} {'same img':>9} {'top-1 agr':>9}")
    rng = np.random.default_rng(0)
    for eps in (0.003, 0.01, 0.02, 0.04):
        noisy = retrieval.reference + eps * _norm(rng.normal(size=retrieval.reference.shape))
        print(_row(f"isotropic noise, norm {eps}", retrieval.compare(noisy)))

    calibration = torch.from_numpy(exporting._sample(split.train.images, exporting.CALIBRATION_IMAGES, edge.preprocess))
    sim = FakeQuant(edge.net, calibration)
    for name, weights, bits in [("sim: int8 weights only", True, None), ("sim: 8-bit activations only", False, 8),
                                ("sim: 16-bit activations only", False, 16), ("sim: int8 weights + 8-bit activations", True, 8)]:
        with sim.quantized(weights, bits):
            print(_row(name, retrieval.compare(sim.embed(inputs))))
    single = []
    for i in range(len(sim.layers)):
        with sim.quantized(False, 8, {i}):
            single.append(retrieval.compare(sim.embed(inputs)))
    best = max(single, key=lambda f: f["agreement"])
    worst = min(single, key=lambda f: f["agreement"])
    print(_row(f"sim: one layer's 8-bit input, best of {len(single)}", best))
    print(_row("sim: one layer's 8-bit input, worst", worst))
    agreeing = sum(f["agreement"] >= 0.98 for f in single)
    print(f"  layers whose 8-bit input alone keeps agreement >= 0.98: {agreeing}/{len(single)}")
    rows[-1]["layers_agreeing"] = rows[-2]["layers_agreeing"] = f"{agreeing}/{len(single)}"

    for device in ("x86-server-int8", "raspberry-pi-5"):
        manifest = exporting.export_edge(edge, load_profile(device), work / f"export-{device}", split.train, split.test,
                                         cloud=cloud, allow_drift=True)
        p = manifest["parity"]
        print(_row(f"{device} ({manifest['format']} int8 artifact)",
                   {"cos_min": p["cos_min"], "cos_mean": p["cos_mean"], "agreement": p["top1_item_agreement"],
                    "class_agreement": p["top1_agreement"]}))
    if args.out:
        from hetero._io import write_json

        write_json(Path(args.out), {"rows": rows})


if __name__ == "__main__":
    main()
