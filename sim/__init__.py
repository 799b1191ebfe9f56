"""Simulation and evaluation: never runs on a Pi. The demo household, the simulated modem, the
detector's evaluation set and its synthesis, the BLE trace generator, replay backend and scoring."""
