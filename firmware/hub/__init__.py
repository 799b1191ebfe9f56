"""The hub service: the household plan, the procedure engine, its event log, and the hub's own
sensors (microphone and BLE)."""
