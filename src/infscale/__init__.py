"""infscale: measure how LLM problem-solving accuracy trades against inference compute."""

__version__ = "0.1.0"
