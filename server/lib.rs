//! Cairn: an offline-first campsite message hub.
//!
//! One binary that is the SMTP and IMAP server for the Delta Chat phones on
//! a hub's Wi-Fi, and that carries mail for the world beyond the camp later,
//! over whatever link appears.
//!
//! # Layers
//!
//! Front ends (`web`, later `smtp`, `imap`) → [`mail`] (rules) → [`store`]
//! (the only module that speaks SQL) → [`domain`] (plain types). [`app`]
//! wires everything; [`cli`] is the command line.
//!
//! # RFC index
//!
//! | RFC | what | status | where |
//! |---|---|---|---|
//! | 5321 | SMTP address syntax and size limits | Partial (addresses only) | `domain::address` |
//! | 6531 | SMTPUTF8 (UTF-8 local parts) | Partial (addresses only) | `domain::address` |
//! | 5890, 5891 | IDNA (internationalised domains) | Yes (via `idna`) | `domain::address` |
//! | 9106 | Argon2 password hashing | Yes (via `argon2`, Argon2id) | `domain::password` |
//! | 5280 | X.509 certificate profile (self-signed, CA:FALSE) | Yes (via `rcgen`) | [`tls`] |

pub mod app;
pub mod cli;
pub mod config;
pub mod datadir;
pub mod domain;
pub mod mail;
pub mod smtp;
pub mod store;
pub mod tls;
pub mod web;
