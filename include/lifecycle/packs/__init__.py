"""Evidence packs: the records a supervisory authority or an auditor asks for, for one period,
in one signed folder they can check with the public key alone, delivered to them once.

``sections``: each record as a named section (its JSON and its HTML); ``build``: the
folder (index, records, PDF, batch roots, checkpoints, instructions, signed manifest);
``delivery``: e-mail and uploads to the configured recipients, each once, in the ledger.
"""

from lifecycle.packs.build import Built, build_pack, read_pack, verify_pack
from lifecycle.packs.delivery import deliver_pack
from lifecycle.packs.period import Period

__all__ = ["Built", "Period", "build_pack", "deliver_pack", "read_pack", "verify_pack"]
