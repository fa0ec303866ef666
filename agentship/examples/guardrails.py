"""Example guardrails: deterministic, so tests and the demo can trip them on purpose."""

from __future__ import annotations

from typing import Any

from agents import Agent, GuardrailFunctionOutput, RunContextWrapper, input_guardrail, output_guardrail


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    parts = []
    for item in value or []:
        content = item.get("content") if isinstance(item, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts += [str(p.get("text", "")) for p in content if isinstance(p, dict)]
    return " ".join(parts)


@input_guardrail
def no_passwords(ctx: RunContextWrapper[Any], agent: Agent[Any], input: Any) -> GuardrailFunctionOutput:
    """Refuse requests that ask for passwords."""
    asks = "password" in _text(input).lower()
    return GuardrailFunctionOutput(
        output_info="the request asks for a password" if asks else None, tripwire_triggered=asks
    )


@output_guardrail
def no_secrets(ctx: RunContextWrapper[Any], agent: Agent[Any], output: Any) -> GuardrailFunctionOutput:
    """Refuse answers that contain the word SECRET."""
    leaks = "SECRET" in str(output)
    return GuardrailFunctionOutput(
        output_info="the answer contains a secret" if leaks else None, tripwire_triggered=leaks
    )
