"""EvoSelfCode: task descriptions -> validated Python functions with a code LLM."""

__version__ = "0.1.0"
