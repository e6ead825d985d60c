"""Galleries at scale: the blockwise exact search against the reference metrics, `hetero index`
(resumable, manifest, sha256), and a gallery index searched by edge queries."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hetero.cli import main
from hetero.errors import UserError
from hetero.index import OwnItems, exact_search, recall_at_k
from hetero.metrics import retrieval_metrics


def _set(n: int, d: int = 16, classes: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), rng.integers(0, classes, n)


@pytest.mark.parametrize("same", [True, False])
def test_exact_search_in_chunks_equals_the_reference_metrics(tmp_path: Path, same: bool) -> None:
    g, gl = _set(700)
    g[10] = g[20] = g[30]  # duplicates: tied similarities, judged as the reference judges them
    gl[20] = gl[30]
    q, ql = (g, gl) if same else _set(150, classes=13, seed=1)  # class 12: no positive, skipped
    np.save(tmp_path / "g.npy", g)
    mapped = np.load(tmp_path / "g.npy", mmap_mode="r")
    own = OwnItems(np.arange(len(q)), np.arange(len(q))) if same else None
    # Small chunks and blocks: several of each, so the merge across chunks is what is tested.
    got = exact_search(q, mapped, ql, gl, own=own, k=5, chunk_rows=128, block_elements=128 * 40)
    ref = retrieval_metrics(q, g, ql, gl, same_images=same)
    for key, value in ref.summary().items():
        assert got.summary()[key] == pytest.approx(value, abs=1e-12)
    assert (got.queries, got.skipped) == (ref.queries, ref.skipped)
    np.testing.assert_allclose(np.nan_to_num(got.average_precision), np.nan_to_num(ref.average_precision), atol=1e-12)
    # The exact top-k: best first, the query's own image never in it, ties in gallery order.
    sims = q.astype(np.float64) @ g.astype(np.float64).T
    if same:
        np.fill_diagonal(sims, -np.inf)
        assert not (got.top_k == np.arange(len(q))[:, None]).any()
    expected = np.argsort(-sims, axis=1, kind="stable")[:, :5]
    assert (got.top_k == expected).mean() > 0.999  # float64 rounding may swap a near-tie
    assert recall_at_k(got.top_k, expected, 5) > 0.999 and recall_at_k(expected[:, ::-1], expected, 1) < 0.5


def test_exact_search_reads_a_float16_gallery_as_its_float32_upcast(tmp_path: Path) -> None:
    g, gl = _set(300)
    np.save(tmp_path / "g16.npy", g.astype(np.float16))
    q, ql = _set(40, seed=2)
    got = exact_search(q, np.load(tmp_path / "g16.npy", mmap_mode="r"), ql, gl, k=3, chunk_rows=64)
    ref = retrieval_metrics(q, g.astype(np.float16).astype(np.float32), ql, gl, same_images=False)
    assert got.summary()["map"] == pytest.approx(ref.map, abs=1e-12)
    unlabelled = exact_search(q, g, k=3)
    assert unlabelled.summary() == {} and unlabelled.top_k.shape == (40, 3)
    with pytest.raises(UserError, match="embedding dim"):
        exact_search(q[:, :8], g)


def _index(tmp_path: Path, setup, name: str, *extra: str) -> Path:
    root, data = setup
    out = tmp_path / name
    assert main(["index", "--cloud", str(root / "cloud"), "--data", data, "--out", str(out), "--quiet", *extra]) == 0
    return out


def test_index_resumes_after_a_failure_without_re_embedding_finished_chunks(tmp_path: Path, search_setup, monkeypatch) -> None:
    from hetero.data import load_data
    from hetero.index import _build, build_index, load_index
    from hetero.models import load_cloud

    root, spec = search_setup
    cloud, data = load_cloud(root / "cloud"), load_data(spec)
    real = _build._embed_chunk
    calls: list[int] = []

    def failing(model, images, batch_size):
        if len(calls) == 2:
            raise RuntimeError("killed")  # as a kill between chunks: two parts written, the third never
        calls.append(len(images))
        return real(model, images, batch_size)

    monkeypatch.setattr(_build, "_embed_chunk", failing)
    out = tmp_path / "index-resume"
    with pytest.raises(RuntimeError, match="killed"):
        build_index(cloud, data, out, chunk=64)
    assert sorted(p.name for p in (out / ".parts").glob("part-*.npy")) == ["part-000000.npy", "part-000001.npy"]
    assert not (out / "manifest.json").exists()
    calls.clear()
    monkeypatch.setattr(_build, "_embed_chunk", lambda m, x, b: (calls.append(len(x)), real(m, x, b))[1])
    manifest = build_index(cloud, data, out, chunk=64)
    assert manifest["resumed_chunks"] == 2 and sum(calls) == len(data.labels) - 128  # only the rest embedded
    assert not (out / ".parts").exists()
    resumed = load_index(out)
    clean = build_index(cloud, data, tmp_path / "index-clean", chunk=300)
    np.testing.assert_array_equal(resumed.embeddings, load_index(tmp_path / "index-clean").embeddings)
    assert clean["cloud_fingerprint"] == cloud.fingerprint
    # Parts of another plan are never mixed in: the same folder with another dtype is refused.
    (out / "manifest.json").unlink()
    with pytest.raises(UserError, match="already holds|unfinished"):
        build_index(cloud, data, tmp_path / "index-clean", dtype="float16", chunk=300)


def test_index_cli_writes_a_verified_manifest_and_refuses_altered_files(tmp_path: Path, search_setup) -> None:
    from hetero.index import load_index

    out = _index(tmp_path, search_setup, "index-cli", "--dtype", "float16", "--index", "hnsw", "--chunk", "100")
    manifest = json.loads((out / "manifest.json").read_text())
    cloud = json.loads((search_setup[0] / "cloud" / "manifest.json").read_text())
    assert manifest["cloud_fingerprint"] == cloud["fingerprint"] and manifest["index"]["kind"] == "hnsw"
    assert set(manifest["files"]) == {"embeddings.npy", "ids.npy", "labels.npy", "index.faiss"}
    index = load_index(out)
    assert index.embeddings.dtype == np.float16 and isinstance(index.embeddings, np.memmap) and len(index.ids) == manifest["items"]
    # Searching the index with the gallery's own embeddings: each finds itself first (HNSW, exact ties aside).
    _, found = index.faiss_index().search(np.asarray(index.embeddings[:50], dtype=np.float32), 1)
    assert (found[:, 0] == np.arange(50)).mean() > 0.9
    labels = np.load(out / "labels.npy")
    labels[0] += 1
    np.save(out / "labels.npy", labels)
    with pytest.raises(UserError, match="does not match its sha256"):
        load_index(out)
    assert main(["index", "--cloud", str(search_setup[0] / "cloud"), "--data", search_setup[1], "--out", str(out), "--quiet"]) == 2


def test_queries_search_an_index_exactly_and_by_faiss_and_another_cloud_is_refused(tmp_path: Path, search_setup) -> None:
    from hetero.data import load_data
    from hetero.index import bench_index, image_ids, load_index

    out = _index(tmp_path, search_setup, "index-bench", "--index", "ivf")
    index = load_index(out)
    data = load_data(search_setup[1])
    queries = np.asarray(index.embeddings[:60]) + 0.01  # the gallery's own images: each left out by its id
    report = bench_index(out, queries, data.labels[:60], image_ids(data.images[:60]), index.fingerprint, tmp_path / "report")
    g = report["gallery_index"]
    assert g["own_images_left_out"] >= 60 and g["labelled"] and 0 <= g["recall_at_1"] <= 1
    found = np.load(tmp_path / "report" / "neighbours_index.npy")
    assert found.shape == (60, 10) and not (found == np.arange(60)[:, None]).any()
    ref = retrieval_metrics(queries, np.asarray(index.embeddings), data.labels[:60], index.labels, same_images=False)
    assert report["retrieval"]["cross_runtime"]["map"] != pytest.approx(ref.map)  # own images left out changes it
    with pytest.raises(UserError, match="was built with cloud model .* but the artifact is compatible with cloud model"):
        bench_index(out, queries, data.labels[:60], None, "sha256:" + "0" * 64, tmp_path / "other")
    assert not (tmp_path / "other").exists()


def test_a_users_own_gallery_needs_only_embeddings_ids_and_a_fingerprint(tmp_path: Path) -> None:
    from hetero.index import bench_index, is_index_dir

    g, _ = _set(400)
    own = tmp_path / "mine"
    own.mkdir()
    np.save(own / "embeddings.npy", g)
    np.save(own / "ids.npy", np.arange(400) + 1000)
    (own / "manifest.json").write_text(json.dumps({"format": "hetero.index/1", "cloud_fingerprint": "sha256:abc"}))
    assert is_index_dir(own)
    report = bench_index(own, g[:30], np.zeros(30, np.int64), None, "sha256:abc", tmp_path / "r")
    g_ = report["gallery_index"]
    assert not g_["labelled"] and g_["approximate"]["index"] == "flat" and g_["recall_at_1"] == 1.0
