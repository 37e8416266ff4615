"""Contamination signals per item (docs/beyond_accuracy.md): n-gram overlap with a
corpus (``ngrams``), membership scores from the model's own token probabilities
(``membership``), and the checks that store them for a run and report them (``check``)."""

from harness.contamination.check import (
    contamination_report,
    item_texts,
    membership_check,
    ngram_check,
)
from harness.contamination.membership import auroc, auroc_ci, min_k, min_k_plus_plus
from harness.contamination.ngrams import OverlapIndex, scan_corpus, words

__all__ = ["OverlapIndex", "auroc", "auroc_ci", "contamination_report", "item_texts",
           "membership_check", "min_k", "min_k_plus_plus", "ngram_check", "scan_corpus",
           "words"]
