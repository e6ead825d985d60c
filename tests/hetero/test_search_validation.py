"""The validation part the search judges on: classes the edge never trains on (open-set), images
the cloud never trained on (`hetero cloud train` leaves the same part out)."""

from __future__ import annotations

import numpy as np

from hetero.cli import main


def _synthetic_split(protocol: str):
    from hetero.data import Dataset, split_dataset

    labels = np.repeat(np.arange(30), 12)
    images = np.random.default_rng(0).random((len(labels), 1, 8, 8), dtype=np.float32)
    return split_dataset(Dataset(images, labels, "synthetic"), protocol=protocol, seed=3)


def test_cloud_training_part_is_the_search_fit_part_and_open_set_leaves_whole_classes_out():
    from hetero.search import cloud_training_part, search_parts

    for protocol in ("open", "closed"):
        split = _synthetic_split(protocol)
        train, holdout, note = cloud_training_part(split, 0.2, seed=3)
        parts = search_parts(split, 0.2, seed=3)
        assert np.array_equal(train.images, parts.train.images) and np.array_equal(train.labels, parts.train.labels)
        assert holdout == {"val_fraction": 0.2, "seed": 3} and f"{len(parts.test.labels)} training images" in note
        assert len(train.labels) + len(parts.test.labels) == len(split.train.labels)
        shared = np.intersect1d(train.labels, parts.test.labels).size
        assert shared == 0 if protocol == "open" else shared == parts.test.num_classes == split.train.num_classes
    # Nothing left out at 0, and the note says what that costs the search.
    train, holdout, note = cloud_training_part(split, 0.0, seed=3)
    assert train is split.train and holdout is None and "trained on" in note


def test_cloud_train_leaves_out_the_search_validation_part(search_setup, tmp_path, capsys):
    from hetero.data import load_split
    from hetero.models import load_cloud
    from hetero.search import SearchData, describe_validation

    root, data = search_setup  # its cloud: `cloud train` with the default --val-fraction (the search's 0.2)
    split = load_split(data, seed=0)
    cloud = load_cloud(root / "cloud")
    searched = SearchData.prepare(cloud, split, 0.2, 0, 0.0625)
    assert cloud.meta["holdout"] == {"val_fraction": 0.2, "seed": 0}
    assert cloud.meta["schedule"]["train_images"] == len(searched.fit.labels) < len(split.train.labels)
    check = searched.validation_check()
    assert check["cloud_saw_val"] is False and "the cloud never trained on them" in describe_validation(check)
    # Another validation part (another fraction) holds images the cloud trained on.
    assert SearchData.prepare(cloud, split, 0.3, 0, 0.0625).validation_check()["cloud_saw_val"] is True

    capsys.readouterr()
    assert main(["cloud", "train", "--data", data, "--arch", str(root / "cloud_arch.json"), "--embed-dim", "32", "--epochs", "1",
                 "--val-fraction", "0", "--out", str(tmp_path / "cloud_all")]) == 0
    assert "the cloud trains on every training image" in capsys.readouterr().out
    every = load_cloud(tmp_path / "cloud_all")
    assert "holdout" not in every.meta and every.meta["schedule"]["train_images"] == len(split.train.labels)
    check = SearchData.prepare(every, split, 0.2, 0, 0.0625).validation_check()
    assert check["cloud_saw_val"] is True and "--val-fraction" in describe_validation(check)
    # A cloud of another split (or an imported one) is not judged.
    other = SearchData.prepare(every, load_split(data, seed=1), 0.2, 1, 0.0625)
    assert other.validation_check()["cloud_saw_val"] is None
