"""What an operator sees of a running server: Prometheus metrics (metrics.py), OpenTelemetry
traces (tracing.py), every call at the edge (calls.py) and the log's format (logs.py)."""
