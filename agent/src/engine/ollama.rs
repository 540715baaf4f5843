//! Ollama native API client.
