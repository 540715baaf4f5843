//! The races beyond text on the agent: image generation, speech to text, the CPU compute race.
//!
//! # Layout
//! - [`config`]: `image_engine:` and `speech_engine:` in agent.yaml.
//! - [`image`]: the image engine (ComfyUI or OpenAI-style), its probe and the job loop;
//!   [`comfy`] + [`comfy_wire`] (ComfyUI's HTTP and WebSocket), [`openai_images`].
//! - [`store`]: generated images on disk, by UUID, with their SHA-256.
//! - [`speech`]: the OpenAI-compatible transcription client (multipart, SSE).
//! - [`compute`]: prime counting on N threads.
//! - [`status`]: the cached probe of an image or speech server.
//! - [`compat`]: the original bench-race's routes (`/api/comfy/*`, `/api/image/*`, `/api/compute`).

pub mod comfy;
pub mod comfy_wire;
pub mod compat;
pub mod compute;
pub mod config;
pub mod image;
pub mod openai_images;
pub mod speech;
pub mod status;
pub mod store;
