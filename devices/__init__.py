"""Device profiles, artifact manifests and the runtimes that run artifacts on a device.

This package needs only numpy and, to run an artifact, that artifact's runtime: it must work on a
Raspberry Pi without torch. It never imports torch, ``hetero`` or ``export``.
"""

from devices._errors import ArtifactError
from devices._errors import ProfileError
from devices._errors import RuntimeUnavailableError
from devices._parity import parity
from devices._profile import PARITY_KEYS
from devices._profile import PRECISIONS
from devices._profile import Budgets
from devices._profile import DeviceProfile
from devices._profile import list_profiles
from devices._profile import load_profile
from devices._thresholds import PARITY_THRESHOLDS
from devices._thresholds import describe_thresholds
from devices._thresholds import parity_failures
from devices._thresholds import parity_thresholds
from devices.manifest import read_manifest
from devices.manifest import sha256_file
from devices.manifest import verify_artifact
from devices.manifest import write_manifest

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
