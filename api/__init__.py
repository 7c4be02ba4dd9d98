"""The HTTP service: a FastAPI app over app.service (routes, authentication, the approvals page)."""

from api.app import create_app

__all__ = ["create_app"]
