"""NVIDIA endpoints (NIM): the shared client, the planner, embeddings, reranker and the doctor."""
