"""Weights -> a proven Lipschitz bound: LipSDP (paper Section II, eq. 5-7) and its proof.

The matrix inequality (:mod:`~pylip.lipsdp.lmi`), the certificate and its forms
(:mod:`~pylip.lipsdp.certificate`, the exact small reformulation
:mod:`~pylip.lipsdp.reduced`, the dedicated solver :mod:`~pylip.lipsdp.engine` and
its one-hidden-layer part :mod:`~pylip.lipsdp.one_layer`),
the solvers' invocation (:mod:`~pylip.lipsdp.solvers`), the proof in exact
real arithmetic and the minimal repair of a solver's point
(:mod:`~pylip.lipsdp.proof`, :mod:`~pylip.lipsdp.repair`), margin and local
certificates, slope sectors, and sampled lower bounds.
"""

from .certificate import Certificate, SplitCertificate, certify, certify_split, closed_form_bound
from .margins import MarginBounds, certify_margins
from .proof import Proof, verify
from .sampling import sampled_lower_bound

__all__ = [
    "Certificate",
    "MarginBounds",
    "Proof",
    "SplitCertificate",
    "certify",
    "certify_margins",
    "certify_split",
    "closed_form_bound",
    "sampled_lower_bound",
    "verify",
]
