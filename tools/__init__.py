"""Adapters to the outside world (Chroma, SageMaker, the audit database, NVIDIA endpoints).
Tools know nothing of the graph."""
