//! Carriers that move opaque frames between nodes and report what they can
//! do (MTU, bit rate, online). They know nothing of the store: routing,
//! retries and custody live in [`crate::relay`].

pub mod lora;
