"""A ResponsesAgent that implements only ``predict``, as many hand-written agents do."""

from __future__ import annotations

import mlflow
from mlflow.pyfunc import ResponsesAgent
from mlflow.types.responses import ResponsesAgentRequest, ResponsesAgentResponse


class PredictOnlyAgent(ResponsesAgent):
    def predict(self, request: ResponsesAgentRequest) -> ResponsesAgentResponse:  # type: ignore[override]
        last = request.input[-1].model_dump()
        text = f"predicted: {last.get('content')}"
        return ResponsesAgentResponse(
            output=[self.create_text_output_item(text, "msg_predicted")],
            usage={
                "input_tokens": 2,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": 3,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": 5,
            },
        )


mlflow.models.set_model(PredictOnlyAgent())
