"""Third-party sharing: one recipient's delivery, step by step, and the sharing register.

``service.Sharing`` runs the tasks of a ``sharing_<recipient>`` DAG; each
step is a module: ``gate_step`` (refuse, and enter the refusal, before
anything is read), ``extract`` (a dataset's rows to a file at the recipient),
``manifest`` (signed manifest and its page), ``register`` (entries and the
ledger) with ``register_export``; ``verify`` is ``manifest verify``.  What a
step hands the next is in ``facts``.  ``gate`` holds the rules a delivery
must pass.  This ``__init__`` imports nothing, so importing one module does
not load the rest.
"""
