"""Every bad input a user (or an attacker) can give: one line on stderr, exit 2, nothing written outside --out.

Each case runs the CLI in-process (``hetero.cli.main`` or ``hetero.devices.run.main``) in its own
working folder, three levels below a root whose whole tree is compared before and after: a
profile named ``../../../x`` or an absolute path would land there. The shared models live in
another folder, compared as well. No case trains: the cloud model is a one-layer convolution
imported with ``hetero cloud import``, the edge model is untrained, and the artifacts are folders
with a real manifest around a placeholder file, since every case is refused before it would run.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from hetero.cli import main

EMBED_DIM = 16


@dataclass(frozen=True)
class Case:
    """One bad input.

    Attributes:
        id: the test id.
        argv: the command line; ``{in}`` is the shared inputs folder, ``{cwd}`` the case's folder.
        message: a fragment the one line must contain (it names the problem).
        setup: writes the case's own bad file(s) into the working folder before the snapshot.
        entry: ``hetero`` or ``hetero.devices.run`` (``python -m hetero.devices.run``).
        as_root: whether the case holds when run as root (root may write anywhere).
    """

    id: str
    argv: str
    message: str
    setup: Callable[[Path, Path], None] | None = None
    entry: str = "hetero"
    as_root: bool = True


def _write(name: str, text: str) -> Callable[[Path, Path], None]:
    def setup(cwd: Path, inputs: Path) -> None:
        (cwd / name).parent.mkdir(parents=True, exist_ok=True)
        (cwd / name).write_text(text.format(cwd=cwd))

    return setup


def _profile(name: str) -> str:
    return f'name = "{name}"\nbackend = "onnx"\nprecision = "fp32"\n'


def _both(*setups: Callable[[Path, Path], None]) -> Callable[[Path, Path], None]:
    def setup(cwd: Path, inputs: Path) -> None:
        for one in setups:
            one(cwd, inputs)

    return setup


def _read_only_folder(cwd: Path, inputs: Path) -> None:
    (cwd / "ro").mkdir()
    (cwd / "ro").chmod(0o500)


def _nan_inputs(cwd: Path, inputs: Path) -> None:
    x = np.zeros((4, 1, 8, 8), np.float32)
    x[2, 0, 3, 3] = np.nan
    np.save(cwd / "nan.npy", x)


def _nan_embeddings(cwd: Path, inputs: Path) -> None:
    emb = np.ones((int((inputs / "queries.txt").read_text()), EMBED_DIM), np.float32)
    emb[5] = np.inf
    np.save(cwd / "emb.npy", emb)


def _flip_byte(relative: str) -> Callable[[Path, Path], None]:
    def setup(cwd: Path, inputs: Path) -> None:
        shutil.copytree(inputs / relative.split("/")[0], cwd / relative.split("/")[0])
        target = cwd / relative
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 1
        target.write_bytes(bytes(data))

    return setup


def _truncated_cloud(cwd: Path, inputs: Path) -> None:
    (cwd / "badcloud").mkdir()
    data = (inputs / "cloud" / "cloud.pt").read_bytes()
    (cwd / "badcloud" / "cloud.pt").write_bytes(data[: len(data) // 2])


def _npz_without_arrays(cwd: Path, inputs: Path) -> None:
    np.savez(cwd / "bad.npz", pictures=np.zeros((3, 8, 8)))


TRAIN = "train --cloud {in}/cloud --data digits --quiet"
BENCH = "bench --artifact {in}/art --cloud {in}/cloud --data digits --quiet"
SEARCH = "search --cloud {in}/cloud --data digits --device x86-server --trials 1 --quiet"
IMPORT = "cloud import --factory torch.nn:Conv2d --weights {in}/conv.pt --size 8 --channels 1 --mean 0.5 --std 0.5"
RUNNER = "{in}/art --repeats 0"

CASES = [
    # 1: a device profile's name is a name, never a path.
    Case("profile-name-traversal", "bench --device p.toml --model {in}/edge --cloud {in}/cloud --data digits --out out/sub",
         "is not a plain device name", _write("p.toml", _profile("../../../ESCAPED"))),
    Case("profile-name-absolute", "bench --device p.toml --model {in}/edge --cloud {in}/cloud --data digits --out out/sub",
         "is not a plain device name", _write("p.toml", _profile("{cwd}/escaped"))),
    Case("profile-name-reserved", "bench --device p.toml --model {in}/edge --cloud {in}/cloud --data digits --out out",
         "a folder bench writes itself", _write("p.toml", _profile("gallery"))),
    Case("profile-names-twice", "bench --device a.toml,b.toml --model {in}/edge --cloud {in}/cloud --data digits --out out",
         "are both named 'board'", _both(_write("a.toml", _profile("board")), _write("b.toml", _profile("board")))),
    Case("profile-export-traversal", "export --model {in}/edge --device p.toml --out out", "is not a plain device name",
         _write("p.toml", _profile("..")), as_root=True),
    # 3: --out that cannot be a folder, refused before any training.
    Case("out-is-a-file", "cloud train --data digits --epochs 1 --out afile", "--out afile is an existing file",
         _write("afile", "x")),
    Case("out-under-a-file", "export --model {in}/edge --device x86-server --out afile/sub", "lies under the file afile",
         _write("afile", "x")),
    Case("out-not-writable", TRAIN + " --out ro/sub", "ro is not writable", _read_only_folder, as_root=False),
    Case("gallery-is-a-file", BENCH + " --gallery afile --out out", "--gallery afile is an existing file", _write("afile", "x")),
    Case("export-inputs-is-a-file", "bench --artifact {in}/art --data digits --export-inputs afile", "--export-inputs afile",
         _write("afile", "x")),
    # 4: no float flag takes nan or inf.
    Case("lr-nan", TRAIN + " --out out --lr nan", "argument --lr: 'nan' is not a finite number"),
    Case("lr-inf", "cloud train --data digits --out out --lr inf", "argument --lr: 'inf' is not a finite number"),
    Case("alignment-minus-inf", TRAIN + " --out out --alignment=-inf", "argument --alignment: '-inf' is not a finite number"),
    Case("confidence-nan", SEARCH + " --out out --confidence nan", "argument --confidence: 'nan' is not a finite number"),
    Case("mean-nan", IMPORT + " --out out --std 0.5 nan", "argument --std: 'nan' is not a finite number"),
    Case("not-a-number", TRAIN + " --out out --lr fast", "argument --lr: 'fast' is not a number"),
    # 5: the device runner refuses NaN inputs (and a corrupt artifact, and a bad flag).
    Case("runner-nan-inputs", RUNNER + " --inputs nan.npy --out out/emb.npy", "NaN or infinite values in 1 of 4 rows", _nan_inputs,
         entry="hetero.devices.run"),
    Case("runner-corrupt-artifact", "art/ --inputs {in}/inputs.npy --out out/emb.npy", "is corrupt: sha256 mismatch",
         _flip_byte("art/model.onnx"), entry="hetero.devices.run"),
    Case("runner-bad-flag", RUNNER + " --inputs {in}/inputs.npy --batch many", "argument --batch", entry="hetero.devices.run"),
    # 6: embeddings from a device with non-finite rows.
    Case("device-embeddings-inf", BENCH + " --embeddings emb.npy --out out", "NaN or infinite", _nan_embeddings),
    # 8: edge.pt beside the artifact is checked against the manifest's sha256.
    Case("edge-pt-changed", "bench --artifact art --cloud {in}/cloud --data digits --out out", "edge.pt is corrupt: sha256 mismatch",
         _flip_byte("art/edge.pt")),
    # 9: a storage that is neither a URL nor a journal/sqlite path.
    Case("storage-not-a-url", SEARCH + " --out out --storage notaurl:::", "neither a storage URL nor a journal"),
    Case("storage-bad-url", SEARCH + " --out out --storage nosuchdb://x/y", "is not a valid storage URL"),
    Case("storage-folder-missing", SEARCH + " --out out --storage nowhere/study.journal", "the folder nowhere does not exist"),
    # Cases that already held.
    Case("corrupt-cloud-model", "train --cloud badcloud --data digits --out out", "corrupt or truncated", _truncated_cloud),
    Case("wrong-data-path", "train --cloud {in}/cloud --data npz:nope.npz --out out", "does not exist"),
    Case("npz-without-arrays", "train --cloud {in}/cloud --data npz:bad.npz --out out", "bad.npz", _npz_without_arrays),
    Case("missing-runtime", "bench --artifact {in}/art-trt --cloud {in}/cloud --data digits --out out",
         "run it on the device instead"),
    Case("another-clouds-artifact", "bench --artifact {in}/art --cloud {in}/cloud2 --data digits --out out", "not comparable"),
    Case("bad-toml", "devices --profile bad.toml", "is not valid TOML", _write("bad.toml", "name = [unclosed\n")),
    Case("unknown-profile-key", "devices --profile p.toml", "unknown key 'colour'",
         _write("p.toml", _profile("board") + 'colour = "red"\n')),
    Case("unknown-device", "export --model {in}/edge --device no-such-phone --out out", "unknown device 'no-such-phone'"),
    Case("unknown-flag", TRAIN + " --out out --fast", "unrecognized arguments: --fast"),
    Case("missing-flag", "export --model {in}/edge", "the following arguments are required"),
    Case("bad-kwargs", IMPORT + " --out out --kwargs {{", "--kwargs is not valid JSON"),
    Case("edge-as-old-model", "update-check --old {in}/edge --new {in}/edge --data digits --out out", "is an edge model"),
    Case("batch-sizes-zero", BENCH + " --out out --batch-sizes 0", "--batch-sizes '0' must be"),
    Case("no-such-report", "report nowhere", "nowhere"),
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two imported cloud models, an untrained edge model and artifact folders around placeholders."""
    from hetero.data import Preprocess, load_split
    from hetero.devices.manifest import artifact_entry, record_source_model, write_manifest
    from hetero.models import build_edge, load_cloud, save_edge
    from hetero.search_spaces import get_space

    root = tmp_path_factory.mktemp("bad-inputs")
    for name, seed in (("cloud", 0), ("cloud2", 1)):
        torch.manual_seed(seed)
        torch.save(torch.nn.Conv2d(1, EMBED_DIM, 3).state_dict(), root / "conv.pt")
        assert main(shlex.split(IMPORT.format(**{"in": root})) + ["--out", str(root / name), "--kwargs",
                    f'{{"in_channels": 1, "out_channels": {EMBED_DIM}, "kernel_size": 3}}', "--quiet"]) == 0
    cloud = load_cloud(root / "cloud")
    arch = get_space("mobilenet_v3").smallest_arch()
    preprocess = Preprocess(get_space("mobilenet_v3").resolution(arch), 1)
    save_edge(build_edge(arch, EMBED_DIM, preprocess, cloud.fingerprint), root / "edge")
    for folder, fmt, name in (("art", "onnx", "model.onnx"), ("art-trt", "tensorrt", "model.engine")):
        (root / folder).mkdir()
        (root / folder / name).write_bytes(b"a placeholder: every case is refused before the runtime reads it")
        shutil.copyfile(root / "edge" / "edge.pt", root / folder / "edge.pt")
        write_manifest(root / folder, {
            **artifact_entry(root / folder / name), "format": fmt, "precision": "fp32", "device": "x86-server",
            "cloud_fingerprint": cloud.fingerprint, "embedding_dim": EMBED_DIM, "preprocess": preprocess.to_dict(),
            "input_shape": [1, preprocess.size, preprocess.size], "parity_thresholds": {"cos_min": 0.99999},
        })
        record_source_model(root / folder)
    np.save(root / "inputs.npy", np.zeros((2, 1, 8, 8), np.float32))
    (root / "queries.txt").write_text(str(len(load_split("digits", seed=0).test.labels)))
    return root


def _tree(root: Path) -> dict[str, tuple]:
    """Every file and folder under ``root`` with what would change if it were written."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            out[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def _run(case: Case, argv: list[str]) -> int:
    if case.entry == "hetero":
        return main(argv)
    from hetero.devices.run import main as run_main

    try:
        return run_main(argv)
    except SystemExit as exc:  # argparse's own exit (a bad flag)
        return int(exc.code)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing_outside_out(
    case: Case, inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if not case.as_root and os.geteuid() == 0:
        pytest.skip(reason="root may write to a read-only folder")
    cwd = tmp_path / "a" / "b" / "cwd"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    if case.setup:
        case.setup(cwd, inputs)
    before, shared = _tree(tmp_path), _tree(inputs)
    argv = shlex.split(case.argv.format(**{"in": inputs, "cwd": cwd}))
    capsys.readouterr()
    code = _run(case, argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.endswith("\n") and "Traceback" not in err, err
    assert case.message in err, err
    after = _tree(tmp_path)
    outside = {k: v for k, v in after.items() if not k.startswith("a/b/cwd/out")}
    assert outside == before, sorted(set(after.items()) ^ set(before.items()))
    assert _tree(inputs) == shared


def test_a_read_only_mount_is_refused_even_for_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # Root passes every permission check (so the table's case is skipped there); a read-only mount refuses root too.
    import hetero.cli._common as common

    real = os.statvfs
    flags = os.ST_RDONLY

    class ReadOnly:
        def __init__(self, path):
            self._st = real(path)

        def __getattr__(self, name):
            return flags if name == "f_flag" else getattr(self._st, name)

    monkeypatch.setattr(common.os, "statvfs", ReadOnly)
    assert main(["cloud", "train", "--data", "digits", "--out", str(tmp_path / "new")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not writable" in err and not (tmp_path / "new").exists()


def test_version_and_help_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"hetero {version('hetero')}"
    assert main(["bench", "--help"]) == 0 and "--strict" in capsys.readouterr().out


def test_storage_urls_and_paths_that_are_accepted(tmp_path: Path) -> None:
    from hetero.search._storage import check_storage

    assert check_storage(None) is None  # the run folder's journal
    assert check_storage("postgresql://user@host/db") == "postgresql://user@host/db"
    assert check_storage(str(tmp_path / "study.journal")) == str(tmp_path / "study.journal")
    assert check_storage(str(tmp_path / "study.db")) == f"sqlite:///{tmp_path / 'study.db'}"
    assert not list(tmp_path.iterdir())  # checking touches nothing


def test_runner_refuses_an_artifact_that_embeds_to_nan(inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    import hetero.devices.run

    class Broken:  # a runtime whose artifact turns finite images into NaN embeddings
        def load(self, artifact, threads=None):
            return self

        def run(self, x):
            return np.full((len(x), EMBED_DIM), np.nan, np.float32)

    monkeypatch.setattr(hetero.devices.run, "get_runtime", lambda backend: Broken())
    capsys.readouterr()
    code = hetero.devices.run.main([str(inputs / "art"), "--inputs", str(inputs / "inputs.npy"), "--out", str(tmp_path / "emb.npy"),
                             "--repeats", "0"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "embeddings of" in err and "NaN or infinite values in 2 of 2 rows" in err
    assert not (tmp_path / "emb.npy").exists()
