"""The cellular caller service: the escalation ladder, SMS check-ins, the modem stack, GNSS time."""
