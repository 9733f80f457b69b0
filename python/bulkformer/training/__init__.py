"""Pretraining (masked expression, DDP, checkpoints) and fine-tuning, configured by
:class:`PretrainConfig` / :class:`FinetuneConfig`."""
from .config import FinetuneConfig, PretrainConfig
from .finetune import FinetunedModel, FinetuneResult, finetune, load_finetuned
from .pretrain import PretrainResult, pretrain

__all__ = ["FinetuneConfig", "FinetuneResult", "FinetunedModel", "PretrainConfig", "PretrainResult", "finetune",
           "load_finetuned", "pretrain"]
