"""What a household sends to its care organisation through the fleet bridge (docs/fleet.md)."""
