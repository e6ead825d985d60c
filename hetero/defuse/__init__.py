"""Defuse: generate the inputs a model gets wrong, group them into "bugs" and correct them (issue 18).

A VAE trained on the training images (:func:`cached_vae`) decodes small perturbations of real
images' latent codes (:func:`perturb_decode`); the variations the candidate mishandles are kept
(:func:`judge`, the negative-flip rule of :mod:`hetero.flips`), grouped by a Dirichlet-process
Gaussian mixture on their codes (:func:`group_codes`), drawn as a t-SNE map (:func:`latent_map`)
and corrected by fine-tuning on them mixed with the training data at ratios lambda
(:func:`correction_sweep`). :func:`find_failures`, :func:`correct_failures` and
:func:`write_defuse` run it end to end (``hetero flips --generate [--correct]``).
"""

from hetero.defuse._correct import CorrectionSettings, best_lambda, correction_sweep, finetune, mix, parse_lambdas, test_scores
from hetero.defuse._generate import Generated, encode, perturb_decode
from hetero.defuse._groups import LatentGroups, group_codes
from hetero.defuse._judge import Embedder, Judgement, judge, keep_failures, top1_correct
from hetero.defuse._map import embed_2d, latent_map
from hetero.defuse._plot import correction_plot
from hetero.defuse._run import DefuseRun, DefuseSettings, check_inputs, correct_failures, find_failures, write_defuse
from hetero.defuse._vae import VAE_FORMAT, ConvVAE, VAEConfig, cached_vae, data_fingerprint, load_vae, save_vae, train_vae

__all__ = [
    "VAEConfig",
    "ConvVAE",
    "train_vae",
    "save_vae",
    "load_vae",
    "cached_vae",
    "data_fingerprint",
    "VAE_FORMAT",
    "Generated",
    "encode",
    "perturb_decode",
    "Embedder",
    "Judgement",
    "judge",
    "keep_failures",
    "top1_correct",
    "LatentGroups",
    "group_codes",
    "embed_2d",
    "latent_map",
    "correction_plot",
    "CorrectionSettings",
    "parse_lambdas",
    "mix",
    "finetune",
    "test_scores",
    "correction_sweep",
    "best_lambda",
    "DefuseSettings",
    "DefuseRun",
    "check_inputs",
    "find_failures",
    "correct_failures",
    "write_defuse",
]
