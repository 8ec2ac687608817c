"""The paper's examples (Section IV), its counterexample (Section II-C), and
pylip's tasks: the digits classifier, robustness attacks, sweeps and their
cluster runs, bulk certification, solver parity against the reference data.

Nothing is imported here: each module states what it needs.
"""
