"""Tool results as text: MCP content blocks joined, images, audio and resources described (never
their JSON), the SDK's output shapes as their text, and the model's live input given the text."""

from __future__ import annotations

import base64

import mcp.types as mcp_types

from agents import ToolOutputImage, ToolOutputText
from agentship.openai_agents.tool_text import mcp_content_text, outputs_as_text, tool_output_text

PNG = base64.b64encode(b"\x89PNG" + b"\0" * 2044).decode()  # 2048 bytes


def test_text_blocks_are_joined_by_newlines() -> None:
    blocks = [
        mcp_types.TextContent(type="text", text="Echo: hi"),
        mcp_types.TextContent(type="text", text="two"),
    ]
    assert mcp_content_text(blocks) == "Echo: hi\ntwo"
    assert mcp_content_text([mcp_types.TextContent(type="text", text="Echo: hi")]) == "Echo: hi"


def test_images_audio_and_resources_are_described_or_given_as_their_text() -> None:
    blocks = [
        mcp_types.ImageContent(type="image", data=PNG, mime_type="image/png"),
        mcp_types.AudioContent(type="audio", data=base64.b64encode(b"RIFF").decode(), mime_type="audio/wav"),
        mcp_types.EmbeddedResource(
            type="resource",
            resource=mcp_types.TextResourceContents(
                uri="file:///notes.txt", mime_type="text/plain", text="the notes"
            ),
        ),
        mcp_types.EmbeddedResource(
            type="resource",
            resource=mcp_types.BlobResourceContents(
                uri="file:///a.bin",
                mime_type="application/octet-stream",
                blob=base64.b64encode(b"abc").decode(),
            ),
        ),
        mcp_types.ResourceLink(type="resource_link", name="report", uri="https://docs.example/report"),
    ]
    assert mcp_content_text(blocks) == "\n".join(
        [
            "[image: image/png, 2048 bytes]",
            "[audio: audio/wav, 4 bytes]",
            "the notes",
            "[resource: file:///a.bin, application/octet-stream, 3 bytes]",
            "[resource link: report <https://docs.example/report>]",
        ]
    )


def test_a_tools_output_as_its_function_call_output_text() -> None:
    assert tool_output_text("plain") == "plain"
    assert tool_output_text({"type": "text", "text": "Echo: hi"}) == "Echo: hi"
    assert tool_output_text(ToolOutputText(text="typed")) == "typed"
    assert tool_output_text([{"type": "text", "text": "a"}, {"type": "input_text", "text": "b"}]) == "a\nb"
    image = f"data:image/png;base64,{PNG}"
    assert tool_output_text(ToolOutputImage(image_url=image)) == "[image: image/png, 2048 bytes]"
    assert (
        tool_output_text({"type": "image", "image_url": "https://x.example/a.png"})
        == "[image: https://x.example/a.png]"
    )
    assert tool_output_text({"city": "Paris", "temperature": 18}) == '{"city": "Paris", "temperature": 18}'
    assert tool_output_text(42) == "42"


def test_the_live_turn_gives_the_model_the_text_a_history_would() -> None:
    live = [
        {"role": "user", "content": "echo hi"},
        {"type": "function_call", "call_id": "c1", "name": "echo", "arguments": "{}"},
        {
            "type": "function_call_output",
            "call_id": "c1",
            "output": [{"type": "input_text", "text": "Echo: hi"}],
        },
        {"type": "function_call_output", "call_id": "c2", "output": "already text"},
        {
            "type": "function_call_output",
            "call_id": "c3",
            "output": [{"type": "input_text", "text": "see"}, {"type": "input_image", "image_url": "data:x"}],
        },
    ]
    assert outputs_as_text(live) == [
        live[0],
        live[1],
        {"type": "function_call_output", "call_id": "c1", "output": "Echo: hi"},
        live[3],
        live[4],  # an image part stays an image part: only text alone is made text
    ]
