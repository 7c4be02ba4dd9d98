"""The application on top of the graph: the service both front ends share, and the `agentops` command."""
