"""One module per workflow node. A node reads state, calls a tool through the runtime context, and
returns a state update; routing lives in `graph.workflow`."""
