"""Policy retrieval: the Chroma policy store, its offline embedding function and the reranker."""
