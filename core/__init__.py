"""What every service shares and nothing else: injectable clocks, the error root, strict config
loading, the durable SQLite opener, sd_notify and the NL/EN texts. Imports none of firmware, dsp,
ble, mqtt or sim."""
