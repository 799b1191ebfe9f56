"""The button-and-LED panel service (gpiozero)."""
