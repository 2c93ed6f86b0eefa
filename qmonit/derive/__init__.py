"""Derived quantities: moving averages, suspicious-site flags with hysteresis, alerts."""
