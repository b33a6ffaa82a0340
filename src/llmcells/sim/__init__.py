"""A loopback server that speaks the OpenAI, Anthropic and Gemini wire protocols, with
deterministic answers, adjustable timing and injectable faults, for tests, demos and benchmarks."""

from .state import SimRequest
from .simulator import Simulator

__all__ = ["SimRequest", "Simulator"]
