"""The OpenAI Agents SDK's failures as the package's errors.

Upstream failures (the openai client's) have one mapping for every backend,
:func:`agentship.upstream.classify`; here it is joined by what only an agent run raises: a
tripped guardrail, the client's own doing, is a 400 naming the guardrail.
"""

from __future__ import annotations

from agents.exceptions import InputGuardrailTripwireTriggered, OutputGuardrailTripwireTriggered

from agentship.errors import GuardrailTriggeredError
from agentship.upstream import Upstream
from agentship.upstream import classify as classify_upstream


def _guardrail(
    exc: InputGuardrailTripwireTriggered | OutputGuardrailTripwireTriggered,
) -> GuardrailTriggeredError:
    kind = "input" if isinstance(exc, InputGuardrailTripwireTriggered) else "output"
    result = exc.guardrail_result
    name = result.guardrail.get_name()
    info = result.output.output_info
    why = f": {info}" if isinstance(info, str) and info else ""
    return GuardrailTriggeredError(f"the {kind} guardrail {name!r} tripped{why}", kind, name)


def classify(exc: BaseException, timeout_s: float, max_turns: int) -> BaseException:
    """The package error for an exception out of a run (others are returned unchanged)."""
    if isinstance(exc, (InputGuardrailTripwireTriggered, OutputGuardrailTripwireTriggered)):
        return _guardrail(exc)
    upstream = Upstream(
        timeout_s=timeout_s, max_turns_message=f"the agent did not finish within max_turns={max_turns}"
    )
    return classify_upstream(exc, upstream)
