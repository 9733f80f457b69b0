"""Training data: shard files read once into a prepared on-disk corpus, and the
``torch.utils.data`` stream pretraining reads it with (``prepare_corpus``,
``open_corpus``; ``bulkformer prepare-corpus`` on the command line)."""
from .store import CorpusSettings, PreparedCorpus, is_corpus, open_corpus, prepare_corpus, verify_corpus

__all__ = ["CorpusSettings", "PreparedCorpus", "is_corpus", "open_corpus", "prepare_corpus", "verify_corpus"]
