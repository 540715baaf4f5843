//! OpenAI-compatible API client.
