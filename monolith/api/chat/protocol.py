"""The body of `POST /v1/chat/completions` in OpenAI's shape, validated, and turned into the
provider interface's types (messages, tools, tool choice, response format)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from monolith.providers.llm import ChatMessage, FunctionTool, NamedFunction, ResponseFormat, ToolCall, ToolChoice

# OpenAI's reasoning efforts; gpt-oss knows low, medium and high (api/chat/serving.py maps the rest).
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")  # fields clients send that do not apply are ignored


class TextPart(_Body):
    type: Literal["text"]
    text: str


class RefusalPart(_Body):
    type: Literal["refusal"]
    refusal: str


Part = Annotated[TextPart | RefusalPart, Field(discriminator="type")]


class FunctionCall(_Body):
    name: str
    arguments: str


class ToolCallIn(_Body):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(_Body):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[Part] | None = None
    tool_calls: list[ToolCallIn] | None = None  # assistant: the calls it made (content may be null)
    tool_call_id: str | None = None  # tool: the call this result answers

    @model_validator(mode="after")
    def _complete(self) -> Message:
        if self.tool_calls and self.role != "assistant":
            raise ValueError(f"only an assistant message has tool_calls, not a {self.role} message")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs tool_call_id, the id of the call it answers")
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError(f"a {self.role} message needs content" +
                             (" or tool_calls" if self.role == "assistant" else ""))
        return self

    def text(self) -> str | None:
        if self.content is None or isinstance(self.content, str):
            return self.content
        return "".join(p.text if isinstance(p, TextPart) else p.refusal for p in self.content)

    def to_chat(self) -> ChatMessage:
        calls = tuple(ToolCall(c.id, c.function.name, c.function.arguments) for c in self.tool_calls or ())
        return ChatMessage(self.role, self.text(), tool_calls=calls, tool_call_id=self.tool_call_id)


class FunctionDef(_Body):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDef(_Body):
    type: Literal["function"]  # custom (free-text) tools are not supported
    function: FunctionDef


class FunctionName(_Body):
    name: str


class NamedToolChoice(_Body):
    type: Literal["function"]
    function: FunctionName


class AllowedTools(_Body):
    mode: Literal["auto", "required"]
    tools: list[NamedToolChoice]


class AllowedToolsChoice(_Body):
    type: Literal["allowed_tools"]
    allowed_tools: AllowedTools


class TextFormat(_Body):
    type: Literal["text"]


class JSONObjectFormat(_Body):
    type: Literal["json_object"]


class JSONSchemaSpec(_Body):
    name: str = "response"
    description: str | None = None
    json_schema: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class JSONSchemaFormat(_Body):
    type: Literal["json_schema"]
    json_schema: JSONSchemaSpec


class RagOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    top_k: int | None = Field(None, ge=1, le=100)
    min_score: float | None = None


class StreamOptions(_Body):
    include_usage: bool = False


class ChatRequest(_Body):
    model: str
    messages: list[Message]
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)  # 0: greedy (vLLM needs top_p > 0)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(1, ge=1, le=1)
    reasoning_effort: ReasoningEffort | None = None
    tools: list[ToolDef] | None = None
    tool_choice: (Literal["none", "auto", "required"]
                  | Annotated[NamedToolChoice | AllowedToolsChoice, Field(discriminator="type")] | None) = None
    parallel_tool_calls: bool | None = None
    response_format: Annotated[TextFormat | JSONObjectFormat | JSONSchemaFormat, Field(discriminator="type")] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    rag: bool | RagOptions = False

    @model_validator(mode="after")
    def _consistent(self) -> ChatRequest:
        if self.top_logprobs and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs: true")
        names = {t.function.name for t in self.tools or ()}
        if self.tool_choice not in (None, "none") and not names:
            raise ValueError("tool_choice needs tools")
        for name in self._named():
            if name not in names:
                raise ValueError(f"tool_choice names {name!r}, which is not one of the tools")
        return self

    def _named(self) -> list[str]:
        choice = self.tool_choice
        if isinstance(choice, NamedToolChoice):
            return [choice.function.name]
        if isinstance(choice, AllowedToolsChoice):
            return [t.function.name for t in choice.allowed_tools.tools]
        return []

    def chat_messages(self) -> list[ChatMessage]:
        return [m.to_chat() for m in self.messages]

    def function_tools(self) -> tuple[FunctionTool, ...]:
        tools = [FunctionTool(t.function.name, t.function.description or "", t.function.parameters, t.function.strict)
                 for t in self.tools or ()]
        if isinstance(self.tool_choice, AllowedToolsChoice):  # only these may be called
            allowed = set(self._named())
            tools = [t for t in tools if t.name in allowed]
        return tuple(tools)

    def provider_tool_choice(self) -> ToolChoice:
        choice = self.tool_choice
        if isinstance(choice, NamedToolChoice):
            return NamedFunction(choice.function.name)
        if isinstance(choice, AllowedToolsChoice):
            return choice.allowed_tools.mode
        return choice or ("auto" if self.tools else "none")

    def provider_response_format(self) -> ResponseFormat | None:
        fmt = self.response_format
        if isinstance(fmt, JSONObjectFormat):
            return ResponseFormat("json_object")
        if isinstance(fmt, JSONSchemaFormat):
            spec = fmt.json_schema
            return ResponseFormat("json_schema", spec.json_schema or {}, name=spec.name, strict=spec.strict)
        return None
