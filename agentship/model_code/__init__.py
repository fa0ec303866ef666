"""MLflow model-from-code files, one per backend: ``log_agent`` logs one of them as the model.

Each file builds its ResponsesAgent and calls ``mlflow.models.set_model`` when MLflow runs it, so
nothing here is meant to be imported. They live in the package so that an installed wheel has
them; the repository's top-level ``agents/`` holds symlinks to them (and has no ``__init__.py``:
``import agents`` is always the OpenAI Agents SDK).
"""
