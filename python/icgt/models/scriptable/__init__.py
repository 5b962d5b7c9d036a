"""icgt's own scriptable Llama, Qwen2, Gemma 2 and Gemma 3 definitions (see docs/architecture.md)."""

from .config import ModelConfig, rope_inverse_frequencies
from .model import FORMAT_VERSION, CausalLM

__all__ = ["FORMAT_VERSION", "CausalLM", "ModelConfig", "rope_inverse_frequencies"]
