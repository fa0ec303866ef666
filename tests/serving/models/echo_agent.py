"""A plain ResponsesAgent that is not one of this package's: the server runs it on threads."""

from __future__ import annotations

from collections.abc import Generator

import mlflow
from mlflow.pyfunc import ResponsesAgent
from mlflow.types.responses import ResponsesAgentRequest, ResponsesAgentResponse, ResponsesAgentStreamEvent


class EchoAgent(ResponsesAgent):
    def predict(self, request: ResponsesAgentRequest) -> ResponsesAgentResponse:  # type: ignore[override]
        text = self._text(request)
        return ResponsesAgentResponse(output=[self.create_text_output_item(text, "msg_echo")])

    def predict_stream(
        self, request: ResponsesAgentRequest
    ) -> Generator[ResponsesAgentStreamEvent, None, None]:  # type: ignore[override]
        text = self._text(request)
        for word in text.split(" "):
            yield ResponsesAgentStreamEvent(**self.create_text_delta(word + " ", "msg_echo"))
        yield ResponsesAgentStreamEvent(
            type="response.output_item.done", item=self.create_text_output_item(text, "msg_echo")
        )

    @staticmethod
    def _text(request: ResponsesAgentRequest) -> str:
        last = request.input[-1].model_dump()
        return f"echo: {last.get('content')}"


mlflow.models.set_model(EchoAgent())
