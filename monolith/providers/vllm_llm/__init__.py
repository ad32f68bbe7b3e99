"""vLLM LLM provider: engine arguments and placement, chat formats (harmony / chat template), the provider."""

from monolith.providers.vllm_llm.provider import VLLMProvider

__all__ = ["VLLMProvider"]
