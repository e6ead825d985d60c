"""Device profiles, artifact manifests and the runtimes that run artifacts on a device.

This package needs only numpy and, to run an artifact, that artifact's runtime: it must work on a
Raspberry Pi without torch. It never imports torch, ``hetero`` or ``export``.
"""

from hetero.devices._errors import ArtifactError, ProfileError, RuntimeUnavailableError
from hetero.devices._parity import parity
from hetero.devices._profile import PARITY_KEYS, PRECISIONS, Budgets, DeviceProfile, list_profiles, load_profile
from hetero.devices._thresholds import PARITY_THRESHOLDS, describe_thresholds, parity_failures, parity_thresholds
from hetero.devices.manifest import read_manifest, sha256_file, verify_artifact, write_manifest

__all__ = [
    "PARITY_KEYS",
    "PARITY_THRESHOLDS",
    "PRECISIONS",
    "ArtifactError",
    "Budgets",
    "DeviceProfile",
    "ProfileError",
    "RuntimeUnavailableError",
    "describe_thresholds",
    "list_profiles",
    "load_profile",
    "parity",
    "parity_failures",
    "parity_thresholds",
    "read_manifest",
    "sha256_file",
    "verify_artifact",
    "write_manifest",
]
