//! The command handlers, one file per group of commands. Each handler
//! starts with its RFC section; the session dispatches to them.

pub mod auth;
pub mod fetch;
pub mod general;
pub mod mailbox;
pub mod message;
pub mod metadata;
pub mod search;
