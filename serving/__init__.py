"""Serving for any registered ResponsesAgent: streaming, OpenAI-compatible, concurrent.

Run it with ``python -m serving -m models:/NAME/VERSION -p 8000``; embed it with
:func:`create_app`.
"""

from serving._app import app_from_env, create_app
from serving._runner import ModelRunner
from serving._settings import ServerSettings

__all__ = ["ModelRunner", "ServerSettings", "app_from_env", "create_app"]
