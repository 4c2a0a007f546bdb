"""Third-party sharing: the gate, the streamed extract, manifests and the sharing register.

``gate`` holds the rules a delivery must pass (also applied when the
configuration is loaded); ``service.Sharing`` runs a recipient's delivery.
This package's ``__init__`` imports nothing, so the configuration checks may
import ``gate`` without a cycle.
"""
