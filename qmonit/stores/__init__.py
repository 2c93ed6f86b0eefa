"""Sinks: the time-series stores (InfluxDB, embedded SQL), the SQL state store and the spool."""
