"""The records a supervisory authority or an auditor asks for first: the record of processing
(``processing``), the statistics of a person's requests and of erasures (``requests``), and the
breach register (``breaches``)."""
