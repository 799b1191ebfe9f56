"""The cellular modem stack: transport and reader thread -> AT channel (one command lock, URCs
taken out before responses are parsed) -> pure parsers -> a typed domain API (SIM7600 family).
`simulator.py` is a SIM7600 on a pseudo-terminal for tests and the demo."""
