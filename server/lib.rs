//! Cairn: an offline-first campsite message hub.
//!
//! One binary that is the SMTP and IMAP server for the Delta Chat phones on
//! a hub's Wi-Fi, and that carries mail for the world beyond the camp later,
//! over whatever link appears.
//!
//! # Layers
//!
//! Front ends (`web`, [`smtp`], [`imap`]) → [`mail`] (rules) → [`store`]
//! (the only module that speaks SQL) → [`domain`] (plain types). [`app`]
//! wires everything; [`cli`] is the command line. [`relay`] (identity,
//! peers, routes, bundles, carriers) sits beside `mail` and uses the store.
//!
//! # RFC index
//!
//! | RFC | what | status | where |
//! |---|---|---|---|
//! | 5321 | SMTP | Yes (no VRFY/EXPN, no source routes) | [`smtp`], `domain::address` |
//! | 3207 | SMTP STARTTLS | Yes | `smtp::session` |
//! | 8314 | Implicit TLS for submission | Yes | `smtp::server` |
//! | 4954, 4616 | SMTP AUTH, PLAIN (and LOGIN) | Yes | `smtp::session` |
//! | 2920 | PIPELINING | Yes | `smtp::session` |
//! | 1870 | SIZE | Yes | `domain::smtp_path`, `mail::intake` |
//! | 6152 | 8BITMIME | Yes | `smtp::session` |
//! | 6531 | SMTPUTF8 | Yes | `domain::smtp_path`, `domain::address` |
//! | 2034, 3463 | Enhanced status codes | Yes | `smtp::reply` |
//! | 3030 | CHUNKING (BDAT) | No (not advertised; BDAT answers 502) | — |
//! | 3464, 6522 | Delivery status notifications | Yes (generation) | `mail::bounce` |
//! | 3156, 9580 | PGP/MIME structure, OpenPGP packet framing | Partial (structure check only) | `mail::policy` |
//! | 3501 | IMAP4rev1 | Yes (no \Recent state) | [`imap`] |
//! | 2177 | IMAP IDLE | Yes | `imap::connection` |
//! | 2971 | IMAP ID | Yes | `imap::cmd::general` |
//! | 5161 | ENABLE | Yes (nothing needs enabling) | `imap::cmd::general` |
//! | 6851 | MOVE | Yes | `imap::cmd::message` |
//! | 4315 | UIDPLUS | Yes | `imap::cmd::message` |
//! | 7162 | CONDSTORE | Partial (MODSEQ, CHANGEDSINCE, UNCHANGEDSINCE; no QRESYNC) | `imap::cmd::fetch`, `imap::cmd::message`, `imap::search` |
//! | 9208 | QUOTA | Yes (STORAGE) | `imap::cmd::metadata` |
//! | 5464 | METADATA | Partial (server comment/admin, /private/ entries) | `imap::cmd::metadata` |
//! | 7888 | LITERAL+ | Yes (via imap-next) | `imap::connection` |
//! | 3691 | UNSELECT | Yes | `imap::session` |
//! | 2342 | NAMESPACE | Yes | `imap::cmd::mailbox` |
//! | 4978 | COMPRESS | No (not offered) | — |
//! | 5890, 5891 | IDNA (internationalised domains) | Yes (via `idna`) | `domain::address` |
//! | 9106 | Argon2 password hashing | Yes (via `argon2`, Argon2id) | `domain::password` |
//! | 5280 | X.509 certificate profile (self-signed, CA:FALSE) | Yes (via `rcgen`) | [`tls`] |

pub mod admission;
pub mod app;
pub mod appliance;
pub mod carriers;
pub mod cli;
pub mod clock;
pub mod config;
pub mod datadir;
pub mod domain;
pub mod imap;
pub mod mail;
pub mod relay;
pub mod smtp;
pub mod store;
pub mod tasks;
pub mod tls;
pub mod web;
