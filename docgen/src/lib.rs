//! The documentation generator behind scripts/install: man pages and bash, zsh and fish
//! completions for every program, generated from the clap definitions the program
//! crates export, and the list of where each program is installed.

pub mod generate;
pub mod programs;
