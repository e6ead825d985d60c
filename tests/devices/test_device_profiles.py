"""Device profiles: the built-in ones load, and a bad profile is refused with one clear line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from hetero.devices import PRECISIONS, DeviceProfile, ProfileError, list_profiles, load_profile
from hetero.devices.runtimes import list_runtimes

BUILT_IN = {
    "x86-server": ("onnx", "fp32"),
    "x86-server-int8": ("onnx", "int8"),
    "pixel-8": ("tflite", "fp16"),
    "raspberry-pi-5": ("tflite", "int8"),
    "iphone-15": ("coreml", "fp16"),
    "jetson-orin-nano": ("tensorrt", "fp16"),
}

GOOD = """
name = "my-board"
description = "a user's board"
backend = "onnx"
precision = "int8"
threads = 3
batch_sizes = [1, 4]

[input]
channels = 1
resolution = 28

[budgets]
macs = 1_000_000
params = 50_000
artifact_bytes = 200_000
latency_ms = 2.5
"""


def test_built_in_profiles_load_with_their_backend_and_precision() -> None:
    assert set(BUILT_IN) <= set(list_profiles())
    for name, (backend, precision) in BUILT_IN.items():
        profile = load_profile(name)
        assert isinstance(profile, DeviceProfile)
        assert (profile.name, profile.backend, profile.precision) == (name, backend, precision)
        assert profile.description and profile.threads >= 1 and profile.batch_sizes
        budgets = profile.budgets
        assert budgets.macs and budgets.params and budgets.artifact_bytes and budgets.latency_ms


def test_every_profile_names_a_registered_runtime() -> None:
    for name in list_profiles():
        profile = load_profile(name)
        assert profile.backend in list_runtimes()
        assert profile.precision in PRECISIONS


def test_user_profile_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "board.toml"
    path.write_text(GOOD)
    profile = load_profile(path)
    assert profile.name == "my-board" and profile.threads == 3
    assert profile.batch_sizes == (1, 4)
    assert (profile.input_channels, profile.input_resolution) == (1, 28)
    assert profile.budgets.latency_ms == 2.5 and profile.budgets.macs == 1_000_000
    assert load_profile(str(path)) == profile
    with pytest.raises(dataclasses.FrozenInstanceError):
        profile.threads = 8  # type: ignore[misc]


def test_absent_input_means_the_models_own(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('name = "p"\nbackend = "tflite"\nprecision = "fp32"\n')
    profile = load_profile(path)
    assert profile.input_channels is None and profile.input_resolution is None
    assert profile.budgets.macs is None and profile.batch_sizes == (1,)


def test_int8_quantization_defaults_to_static_and_may_be_dynamic(tmp_path: Path) -> None:
    path = tmp_path / "board.toml"
    path.write_text(GOOD)
    assert load_profile(path).quantization == "static"
    path.write_text(GOOD.replace("threads = 3", 'quantization = "dynamic"'))
    assert load_profile(path).quantization == "dynamic"


def test_parity_table_sets_the_devices_own_thresholds(tmp_path: Path) -> None:
    path = tmp_path / "board.toml"
    path.write_text(GOOD)
    assert load_profile(path).parity == {}
    path.write_text(GOOD + "\n[parity]\ntop1_item_agreement = 0.8\ntop1_agreement = 0.99\n")
    assert load_profile(path).parity == {"top1_item_agreement": 0.8, "top1_agreement": 0.99}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("threads = 3", "threds = 3"), "unknown key 'threds'"),
        (lambda t: t.replace('backend = "onnx"', 'backend = "openvino"'), "unknown backend 'openvino'"),
        (lambda t: t.replace('precision = "int8"', 'precision = "int4"'), "bad precision 'int4'"),
        (lambda t: t.replace("latency_ms = 2.5", "latency_ms = -1.0"), "'latency_ms' must be a positive"),
        (lambda t: t.replace("resolution = 28", "resolution = \"28\""), "'resolution' must be a positive"),
        (lambda t: t.replace("macs = 1_000_000", "flops = 1"), "unknown key 'flops'"),
        (lambda t: t.replace("batch_sizes = [1, 4]", "batch_sizes = []"), "'batch_sizes'"),
        (lambda t: t.replace('name = "my-board"', ""), "lacks the required key 'name'"),
        (lambda t: t.replace("threads = 3", "threads = true"), "'threads' must be a positive"),
        (lambda t: t + "\n[budgets\n", "not valid TOML"),
        (lambda t: t.replace("threads = 3", 'quantization = "weights"'), "bad quantization 'weights'"),
        (lambda t: t.replace('precision = "int8"', 'precision = "fp16"\nquantization = "static"'),
         "'quantization' applies to int8 only"),
        (lambda t: t + "\n[parity]\ncos_max = 0.5\n", "unknown key 'cos_max'"),
        (lambda t: t + "\n[parity]\ntop1_agreement = 1.5\n", "'top1_agreement' must be a number in"),
        (lambda t: t + "\n[parity]\ncos_min = \"high\"\n", "'cos_min' must be a number in"),
    ],
)
def test_bad_profiles_are_refused_with_one_line(tmp_path: Path, edit, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(edit(GOOD))
    with pytest.raises(ProfileError, match=message) as info:
        load_profile(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_missing_profile_file_and_unknown_name() -> None:
    with pytest.raises(ProfileError, match="does not exist"):
        load_profile("/nonexistent/board.toml")
    with pytest.raises(ProfileError, match="unknown device 'pixel-9000'.*x86-server"):
        load_profile("pixel-9000")


def test_profile_errors_are_value_errors() -> None:
    assert issubclass(ProfileError, ValueError)
