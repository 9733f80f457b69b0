"""Pretraining (masked expression, DDP, checkpoints) and fine-tuning."""
from .finetune import FinetunedModel, FinetuneResult, finetune, load_finetuned
from .pretrain import PretrainResult, pretrain

__all__ = ["FinetuneResult", "FinetunedModel", "PretrainResult", "finetune", "load_finetuned", "pretrain"]
