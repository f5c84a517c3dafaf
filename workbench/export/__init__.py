"""What a run turns into: the merged model (merge), GGUF files for llama.cpp / Ollama
(gguf, verify, modelfile), and what the adapter learned (spectrum). Each writes its own
report beside its files; none writes the run's status, metrics or adapter."""

__all__ = ["merge", "gguf", "verify", "modelfile", "spectrum"]
