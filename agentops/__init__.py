"""AgentOps: a safety-first deployment orchestrator for SageMaker, built on LangGraph."""

__version__ = "0.1.0"
