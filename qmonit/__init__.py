"""qmonit: low-latency monitoring of grid and HPC batch systems into InfluxDB and SQL."""

__version__ = "0.1.0"
