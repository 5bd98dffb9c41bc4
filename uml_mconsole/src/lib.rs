//! uml_mconsole: drive a running UML through its management console — one-shot
//! commands, an interactive session, commands from stdin, and the notify socket.

pub mod absolutize;
pub mod cli;
pub mod command;
pub mod interactive;
pub mod log;
pub mod notify;
pub mod render;
pub mod session;

pub use session::{Outcome, Session, Settings};
