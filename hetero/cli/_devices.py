"""`hetero devices`: the device profiles, one line each."""

from __future__ import annotations

import argparse

from hetero.cli._common import COMMANDS

__all__ = ["register"]


@COMMANDS.register("devices")
def register(sub, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "devices",
        help="list the device profiles",
        description="List device profiles (devices/*.toml, or --profile FILE for your own), the parity an export for each must show (* where the profile's [parity] table sets it), and whether each can run here.",
    )
    p.add_argument("--profile", action="append", default=[], metavar="FILE", help="also show this profile file (repeatable)")
    p.set_defaults(run=_run, command="devices")


def _run(args: argparse.Namespace) -> int:
    from hetero.cli._common import print_table
    from hetero.devices import describe_thresholds, list_profiles, load_profile, parity_thresholds
    from hetero.devices.runtimes import get_runtime

    rows = []
    for name in [*list_profiles(), *args.profile]:
        profile = load_profile(name)
        ok, reason = get_runtime(profile.backend).available()
        b = profile.budgets
        rows.append([
            profile.name, profile.backend, profile.precision if profile.precision != "int8" else f"int8 {profile.quantization}",
            f"{b.macs / 1e6:.0f}M" if b.macs else "-", f"{b.latency_ms} ms" if b.latency_ms else "-",
            describe_thresholds(parity_thresholds(profile), own=profile.parity), profile.description, "yes" if ok else f"no: {reason}",
        ])
    print_table(["device", "backend", "precision", "MACs budget", "latency budget", "export parity", "description", "runs here"], rows)
    return 0
