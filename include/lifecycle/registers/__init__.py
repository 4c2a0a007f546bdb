"""The records a supervisory authority or an auditor asks for first: the record of processing
(``processing``), and the statistics of a person's requests and of erasures (``requests``)."""
