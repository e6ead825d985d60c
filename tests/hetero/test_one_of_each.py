"""One of each mechanism: one registry, one atomic writer, one parity function, one user-error base class."""

from __future__ import annotations

import numpy as np
import pytest

import hetero.devices
import hetero.devices._atomic as atomic
from hetero import _io
from hetero.devices._errors import ArtifactError, ProfileError, RuntimeUnavailableError
from hetero.devices.manifest import atomic_write_bytes
from hetero.errors import UserError
from hetero.export import ExportError
from hetero.metrics import parity
from hetero.search_spaces import ArchError


@pytest.mark.parametrize("error", [ProfileError, ArtifactError, RuntimeUnavailableError, ExportError, ArchError])
def test_every_package_error_is_a_user_error(error: type[Exception]) -> None:
    assert issubclass(error, UserError) and issubclass(error, ValueError)


def test_the_writers_are_devices_one() -> None:
    assert _io.atomic_path is atomic.atomic_path
    assert atomic_write_bytes is atomic.atomic_write_bytes


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path) -> None:
    target = tmp_path / "sub" / "a.json"
    atomic_write_bytes(target, b"old")
    with pytest.raises(RuntimeError), atomic.atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.json"]


def test_tree_mode_replaces_a_folder_artifact(tmp_path) -> None:
    target = tmp_path / "model.mlpackage"
    for content in (b"first", b"second"):
        with atomic.atomic_path(target, tree=True) as tmp:
            tmp.mkdir()
            (tmp / "weights.bin").write_bytes(content)
    assert (target / "weights.bin").read_bytes() == b"second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.mlpackage"]


def test_metrics_parity_adds_retrieval_figures_to_devices_row_figures() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(20, 8)).astype(np.float32)
    cand = ref + rng.normal(scale=0.05, size=ref.shape).astype(np.float32)
    row = hetero.devices.parity(ref, cand)
    assert parity(ref, cand) == row
    assert row["cos_min"] < 1.0


def test_every_extension_point_is_the_one_registry() -> None:
    from hetero.cli import _common as cli
    from hetero.cli import build_parser
    from hetero.data import _sources
    from hetero.devices._registry import Registry
    from hetero.devices.runtimes import _base as runtimes
    from hetero.devices.runtimes import _mil_ops
    from hetero.export import _base as backends
    from hetero.search_spaces import _registry as spaces

    build_parser()  # imports the command modules, which register the commands
    registries = [runtimes._RUNTIMES, backends._BACKENDS, spaces._SPACES, _sources._SOURCES, _mil_ops.OPS,
                  _mil_ops.CONSTEXPR_OPS, cli.COMMANDS]
    assert all(isinstance(r, Registry) and r.names() for r in registries)


def test_every_command_module_registers_its_command_and_help_keeps_their_order() -> None:
    import argparse

    from hetero.cli import _COMMAND_MODULES, build_parser
    from hetero.cli._common import COMMANDS

    parser = build_parser()
    shown = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert sorted({add.__module__ for _, add in COMMANDS.items()}) == sorted(_COMMAND_MODULES)
    assert list(shown)[:2] == ["demo", "cloud"] and set(shown) == set(COMMANDS.names())


def test_the_registry_refuses_a_second_thing_under_a_taken_name() -> None:
    from hetero.devices._registry import Registry

    registry: Registry = Registry("widget", UserError)

    @registry.register("a", size=2)
    class A:
        pass

    registry.register("a")(A)  # the same definition again (a reloaded module): harmless
    with pytest.raises(ValueError, match="widget 'a' is already registered by .*A"):
        registry.add("a", len)
    assert registry.get("a") is A and A.name == "a" and A.size == 2 and "a" in registry
    with pytest.raises(UserError, match="unknown widget 'b'; use one of a"):
        registry.get("b")
    with pytest.raises(UserError, match="unknown widget"):
        registry.get(["unhashable"])  # type: ignore[arg-type]
