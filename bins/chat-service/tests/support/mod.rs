//! Shared helpers of the chat-service binary tests.
pub mod child;
pub mod prom;
