//! humfsify: record a tree's real modes, owners and device numbers in humfs metadata
//! files beside it (so that UML's humfs can show them while the host files belong to
//! one user), and `-r` to put them back.
//!
//! `at` reads and changes the tree by descriptor only (the tree is another user's);
//! `forward` humfsifies, `revert` undoes it; `scan` walks `data/`, `owner` and `size`
//! turn the command line into numbers, `error` names what went wrong, `progress` draws
//! a bar on a terminal.

pub mod at;
pub mod cli;
pub mod error;
pub mod forward;
pub mod owner;
pub mod progress;
pub mod revert;
pub mod scan;
pub mod size;

pub use error::HumfsifyError;
