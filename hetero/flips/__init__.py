"""Negative flips (PCT): which queries a candidate model breaks that a reference got right.

Flip rates between two models' decisions (top-1 retrieval or classification), and `hetero flips`:
group the flipped queries of a report by what they look like and show examples of each group.
"""

from hetero.flips._core import FlipAnalysis, analyse_flips, reload_test_images, write_flips
from hetero.flips._decisions import classification_flips, classify, flip_summary, retrieval_flips
from hetero.flips._groups import FlipGroups, group_flips
from hetero.flips._source import PAIRINGS, FlipSource, load_flip_source

__all__ = [
    "flip_summary",
    "retrieval_flips",
    "classify",
    "classification_flips",
    "FlipGroups",
    "group_flips",
    "FlipSource",
    "load_flip_source",
    "PAIRINGS",
    "FlipAnalysis",
    "analyse_flips",
    "reload_test_images",
    "write_flips",
]
