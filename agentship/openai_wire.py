"""OpenAI Responses wire objects, as plain dicts. Pure; shared by the server and the scripted model."""

from __future__ import annotations

import time
from typing import Any


def response_usage(usage_in: int, usage_out: int) -> dict[str, Any]:
    return {
        "input_tokens": usage_in,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": usage_out,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage_in + usage_out,
    }


def response_object(
    rid: str,
    model: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    status: str = "completed",
) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "metadata": {},
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "temperature": None,
        "tool_choice": "auto",
        "tools": [],
        "top_p": None,
        "usage": usage,
    }
