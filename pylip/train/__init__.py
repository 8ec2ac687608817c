"""The torch trainers (paper Section III-IV): the original's ``MeinNetz`` loop
(:mod:`~pylip.train.training`), the trainer of any depth
(:mod:`~pylip.train.mlp_training`), the compiled SGD kernel and the CPU
arithmetic and thread settings they run in.

Needs torch (the ``train`` extra); nothing is imported here, so that
``import pylip.train.threads`` works without it.
"""
