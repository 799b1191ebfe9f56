"""Exit-door sensors that a service owns and publishes on `door/<id>` (the hub's or the panel's)."""
