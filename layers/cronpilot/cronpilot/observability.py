"""Logger, Tracer and Metrics: created once, here, and imported by every handler."""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()
