"""`hetero search --space cloud_pruned`: the cloud network pruned, searched standalone from its weights."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hetero.cli import main


def test_cloud_pruned_is_searched_standalone_from_the_cloud_weights(search_setup, tmp_path, capsys):
    from hetero.cost import count_cost
    from hetero.models import load_cloud, load_edge
    from hetero.search._nets import net_builder, search_space
    from hetero.search_spaces import default_edge_arch

    root, data = search_setup
    run = root / "cloud-pruned-search"  # unique: the fixture's root is shared by the session's search tests
    common = ["search", "--cloud", str(root / "cloud"), "--data", data, "--device", "x86-server", "--space", "cloud_pruned",
              "--resolutions", "24", "--quiet"]
    # No supernet: oneshot is refused in one line, before the run folder is made.
    capsys.readouterr()
    assert main([*common, "--strategy", "oneshot", "--out", str(tmp_path / "oneshot")]) == 2
    assert "has no supernet" in capsys.readouterr().err and not (tmp_path / "oneshot").exists()
    assert main([*common, "--strategy", "standalone", "--pruner", "none", "--sampler", "random", "--trials", "3", "--epochs", "1",
                 "--finalists", "1", "--final-trials", "1", "--final-epochs", "1", "--max-macs", "default", "--out", str(run)]) == 0
    summary = json.loads((run / "search.json").read_text())
    trials = [t for t in summary["trials"] if t["state"] == "COMPLETE"]
    assert len(trials) == 3 and all(t["arch"]["space"] == "cloud_pruned" for t in trials)
    # Costs are those of the pruned cloud network (with its input map): fewer channels kept, fewer MACs.
    cloud = load_cloud(root / "cloud")
    build = net_builder(search_space("cloud_pruned", cloud, "standalone", (24,)), cloud, 1)
    assert all(t["macs"] == count_cost(build(t["arch"]), (1, 24, 24))["macs"] for t in trials)
    macs = [count_cost(build({"space": "cloud_pruned", "resolution": 24, "keep": k}), (1, 24, 24))["macs"] for k in (0.25, 1.0)]
    assert macs[0] < macs[1]
    # A fine-tuned pruned cloud is rebuilt from the cloud's source its architecture records, and embeds like the cloud.
    edge = load_edge(run / "final" / "trial-0" / "edge.pt")
    assert edge.arch["space"] == "cloud_pruned" and edge.arch["cloud"]["type"] == "space"
    assert edge.embed(np.zeros((2, 1, 8, 8), dtype=np.float32)).shape == (2, 32)
    # It competes with what `hetero train` builds without --arch (trained from scratch, as the final trials train),
    # not with the space's own default (half the channels kept), and the report names it so.
    reference, pick = summary["reference"], summary["pick"]
    assert reference["arch"] == default_edge_arch() and reference["test"]["cross_torch"]["map"] > 0
    assert summary["device"]["budgets"]["macs"] == reference["macs"]  # --max-macs default: no costlier than it
    assert summary["trials"][0]["reference"] == "default" and summary["trials"][0]["arch"]["keep"] == 0.5
    if pick["final_trial"] is None:  # no pruned cloud surely beat it: the pick is the reference itself
        assert pick["arch"] == reference["arch"] and pick["choice"]["rule"] != "best on validation"
        assert pick.get("test_vs_reference") is None  # the same model: nothing to compare
    else:
        assert pick["arch"]["space"] == "cloud_pruned" and pick["choice"]["confidence"] >= 0.95
        # On the test queries, which chose nothing: the gain is the difference of the two test cross mAPs.
        gain = pick["test_vs_reference"]
        assert gain["cross_map_gain"] == pytest.approx(100 * (pick["test"]["cross_torch"]["map"] - reference["test"]["cross_torch"]["map"]))
        assert 0.0 <= gain["confidence"] <= 1.0 and gain["queries"] > 0
    assert json.loads((run / "best" / "arch.json").read_text())["space"] == pick["arch"]["space"]
    assert load_edge(run / "best" / "edge.pt").arch["space"] == pick["arch"]["space"]
    assert main(["report", str(run)]) == 0
    assert "| default architecture (mobilenet_v3, as hetero train builds it) |" in (run / "report.md").read_text()
