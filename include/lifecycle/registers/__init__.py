"""The records a supervisory authority or an auditor asks for, generated from the configuration and the state store."""
