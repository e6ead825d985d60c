"""Manifests: atomic writes, sha256 of files and directory artifacts, verification."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hetero.devices import ArtifactError, read_manifest, sha256_file, verify_artifact, write_manifest
from hetero.devices.manifest import MANIFEST_NAME, artifact_bytes, artifact_entry, check_fingerprint


def _artifact_dir(tmp_path: Path, payload: bytes = b"model bytes " * 100) -> Path:
    (tmp_path / "model.bin").write_bytes(payload)
    write_manifest(tmp_path, {"format": "onnx", "precision": "fp32",
                              "cloud_fingerprint": "sha256:abc", **artifact_entry(tmp_path / "model.bin")})
    return tmp_path


def test_write_then_read_round_trips_and_leaves_no_temp_file(tmp_path: Path) -> None:
    manifest = {"format": "tflite", "parity": {"cos_min": 0.99}, "allow_drift": False}
    path = write_manifest(tmp_path, manifest)
    assert path == tmp_path / MANIFEST_NAME
    assert read_manifest(tmp_path) == manifest
    assert [p.name for p in tmp_path.iterdir()] == [MANIFEST_NAME]
    write_manifest(tmp_path, {"format": "onnx"})  # replaces
    assert read_manifest(tmp_path) == {"format": "onnx"}


def test_sha256_of_a_file_matches_hashlib(tmp_path: Path) -> None:
    import hashlib

    f = tmp_path / "a.bin"
    f.write_bytes(b"x" * 3_000_000)  # more than one read chunk
    assert sha256_file(f) == hashlib.sha256(b"x" * 3_000_000).hexdigest()


def test_sha256_of_a_directory_is_deterministic_and_sees_every_change(tmp_path: Path) -> None:
    def make(root: Path, files: dict[str, bytes]) -> Path:
        for rel, data in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        return root

    files = {"Manifest.json": b"{}", "Data/model.mlmodel": b"spec", "Data/weights/weight.bin": b"w" * 10}
    a = make(tmp_path / "a.mlpackage", files)
    b = make(tmp_path / "b.mlpackage", dict(reversed(list(files.items()))))
    assert sha256_file(a) == sha256_file(b)
    assert artifact_bytes(a) == sum(len(v) for v in files.values())
    digest = sha256_file(a)
    (a / "Data/weights/weight.bin").write_bytes(b"w" * 9 + b"v")
    assert sha256_file(a) != digest
    (a / "Data/weights/weight.bin").write_bytes(b"w" * 10)
    (a / "Data/weights/weight.bin").rename(a / "Data/weights/weights.bin")
    assert sha256_file(a) != digest


def test_verify_accepts_an_intact_artifact(tmp_path: Path) -> None:
    directory = _artifact_dir(tmp_path)
    path, manifest = verify_artifact(directory)
    assert path == directory / "model.bin" and manifest["bytes"] == 1200


def test_verify_refuses_flipped_bytes(tmp_path: Path) -> None:
    directory = _artifact_dir(tmp_path)
    data = bytearray((directory / "model.bin").read_bytes())
    data[100] ^= 0xFF
    (directory / "model.bin").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="is corrupt: sha256 mismatch .*re-export it") as info:
        verify_artifact(directory)
    assert "\n" not in str(info.value)


def test_verify_refuses_a_modified_directory_artifact(tmp_path: Path) -> None:
    package = tmp_path / "model.mlpackage"
    (package / "Data").mkdir(parents=True)
    (package / "Data" / "weight.bin").write_bytes(b"abc")
    write_manifest(tmp_path, artifact_entry(package))
    verify_artifact(tmp_path)
    (package / "Data" / "extra.bin").write_bytes(b"")
    with pytest.raises(ArtifactError, match="sha256 mismatch"):
        verify_artifact(tmp_path)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "model.bin").unlink(), "is missing"),
        (lambda d: (d / MANIFEST_NAME).unlink(), "does not exist"),
        (lambda d: (d / MANIFEST_NAME).write_text("{not json"), "not valid JSON"),
        (lambda d: (d / MANIFEST_NAME).write_text("[1, 2]"), "not a JSON object"),
        (lambda d: write_manifest(d, {"artifact": "model.bin"}), "lacks 'sha256'"),
        (lambda d: write_manifest(d, {**read_manifest(d), "artifact": "../model.bin"}), "plain file name"),
    ],
)
def test_verify_refuses_broken_artifact_dirs(tmp_path: Path, damage, message: str) -> None:
    directory = _artifact_dir(tmp_path)
    damage(directory)
    with pytest.raises(ArtifactError, match=message):
        verify_artifact(directory)


def test_fingerprint_check(tmp_path: Path) -> None:
    manifest = read_manifest(_artifact_dir(tmp_path))
    check_fingerprint(manifest, "sha256:abc")
    with pytest.raises(ArtifactError, match="not comparable"):
        check_fingerprint(manifest, "sha256:other")


def test_manifest_is_plain_sorted_json(tmp_path: Path) -> None:
    write_manifest(tmp_path, {"b": 1, "a": [1.5]})
    text = (tmp_path / MANIFEST_NAME).read_text()
    assert json.loads(text) == {"a": [1.5], "b": 1} and text.index('"a"') < text.index('"b"')
    with pytest.raises(ValueError):
        write_manifest(tmp_path, {"nan": float("nan")})  # not valid JSON for other readers


def test_the_manifest_schema_is_documented_and_checked() -> None:
    """Every key of the Manifest TypedDict is named in docs/design.md; the check refuses strays."""
    from hetero.devices.manifest import Manifest, check_manifest

    section = (Path(__file__).resolve().parents[2] / "docs" / "design.md").read_text().split("## manifest.json", 1)[1]
    keys = Manifest.__required_keys__ | Manifest.__optional_keys__
    assert sorted(k for k in keys if f"`{k}`" not in section) == []
    full = {k: None for k in Manifest.__required_keys__}
    assert check_manifest(full) is full
    with pytest.raises(ValueError, match=r"missing \['status'\], unknown \['stray'\]"):
        check_manifest({**{k: v for k, v in full.items() if k != "status"}, "stray": 1})
