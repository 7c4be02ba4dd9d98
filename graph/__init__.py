"""The LangGraph workflow: state, dependencies (runtime context) and wiring."""
