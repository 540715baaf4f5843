//! A protocol-faithful fake Ollama server with scripted timing.
