"""The design card with none of AgentOps' work in it: the floor under any request AgentOps can serve.

`bench/bench_floor.py` serves this with uvicorn, the way `agentops serve` serves the real app. One
route, POST /plans, takes the same body as the real one and answers 201:

- FLOOR_GRAPH=0: FastAPI + uvicorn only — a bearer check, a pydantic body, a JSON answer;
- FLOOR_GRAPH=1: and the route runs a LangGraph graph of nine no-op nodes (the workflow's node count) on
  a worker thread, with a SQLite checkpointer in WAL mode and durability "exit": one durable checkpoint
  per request, the least a plan that must survive a crash can store.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import tempfile
import uuid
from pathlib import Path
from typing import Any, TypedDict

from fastapi import FastAPI, Header, HTTPException
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from pydantic import BaseModel, ConfigDict

NODES = ("intake", "retrieve", "plan", "resolve", "guardrail", "audit", "approval", "deploy", "watch")


class PlanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    intent: str
    env: str


class State(TypedDict, total=False):
    intent: str
    env: str
    steps: int


def build_graph(checkpointer: SqliteSaver) -> Any:
    builder = StateGraph(State)
    for name in NODES:
        builder.add_node(name, lambda state: {"steps": state.get("steps", 0) + 1})
    builder.add_edge(START, NODES[0])
    for before, after in zip(NODES, NODES[1:], strict=False):
        builder.add_edge(before, after)
    builder.add_edge(NODES[-1], END)
    return builder.compile(checkpointer=checkpointer)


def run_graph(graph: Any, body: PlanRequest) -> dict[str, Any]:
    config = {"configurable": {"thread_id": uuid.uuid4().hex}}
    for _ in graph.stream({"intent": body.intent, "env": body.env}, config, durability="exit"):
        pass
    return {"status": "done"}


def create_app(with_graph: bool) -> FastAPI:
    app = FastAPI()
    graph = None
    if with_graph:
        path = Path(os.environ.get("FLOOR_HOME") or tempfile.mkdtemp()) / "checkpoints.db"
        connection = sqlite3.connect(path, check_same_thread=False, timeout=30)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        graph = build_graph(SqliteSaver(connection))

    @app.post("/plans", status_code=201)
    async def submit(body: PlanRequest, authorization: str = Header(default="")) -> dict[str, Any]:
        if not authorization.startswith("Bearer "):
            raise HTTPException(401, "no key")
        if graph is None:
            return {"status": "done"}
        return await asyncio.to_thread(run_graph, graph, body)

    return app


app = create_app(os.environ.get("FLOOR_GRAPH") == "1")
