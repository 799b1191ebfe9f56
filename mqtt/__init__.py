"""The hub's MQTT layer: topic contract, payload schemas, broker configuration and the client
wrapper every service uses (reconnect, last will, validation on receive, persistent outbox)."""
