"""A stored background response, made runnable again on the replica that takes it over. Pure."""

from __future__ import annotations

from agentship.inputs import parse_request
from agentship.state import ReplayState, StateStore, StoredResponse
from serving._faces import Call, ResponsesEncoder, echo_fields
from serving._openai_request import ResponsesBody, agent_request
from serving._openai_stream import ResponseEncoder
from serving._stored import Recorder


def resume_call(store: StateStore, rec: StoredResponse, state: ReplayState) -> tuple[Call, ResponseEncoder]:
    """The call to run again, and its encoder continuing the earlier attempt's numbering."""
    parsed = ResponsesBody.model_validate(rec.request)
    request = parse_request(agent_request(parsed, rec.history, rec.user_id or None))
    created_at = int((rec.response or {}).get("created_at") or rec.created_at)
    model = str((rec.response or {}).get("model") or parsed.model or "agent")
    encoder = ResponseEncoder(
        model,
        response_id=rec.id,
        created_at=created_at,
        echo=echo_fields(parsed),
        first_index=state.next_index,
    )
    encoder._seq = state.next_seq
    recorder = Recorder(store, rec)
    call = Call(request, True, ResponsesEncoder(encoder, False, recorder), rec.id, recorder, background=True)
    return call, encoder
