"""Pretraining (masked expression, DDP, checkpoints) and fine-tuning."""
from .pretrain import PretrainResult, pretrain

__all__ = ["PretrainResult", "pretrain", "finetune", "FinetuneResult"]


def __getattr__(name: str):
    if name in ("finetune", "FinetuneResult", "FinetunedModel"):
        from . import finetune as module

        return getattr(module, name)
    raise AttributeError(name)
