"""Alembic migrations of the state store (``python -m agentship.state upgrade``)."""
