"""The wearable: a partner's own time-out button, vibration prompts and the on-device verdict
"at least 100 m from home" (docs/wearable.md)."""
