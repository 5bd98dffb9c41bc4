//! uml_moo: merge a UML COW file with its backing file, into a new image or in place,
//! and inspect COW files.

pub mod cli;
pub mod engine;
pub mod error;
pub mod inspect;
pub mod io_util;
pub mod journal;
pub mod merge;
pub mod owner;
pub mod progress;
pub mod summary;
mod sys;

pub use error::MooError;
pub use inspect::{inspect, CowInfo};
pub use merge::{merge, MergeReport, MergeRequest, Target};
