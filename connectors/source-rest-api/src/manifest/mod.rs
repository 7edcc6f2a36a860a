//! The manifest: loading and `$ref` resolution ([`refs`]), and the helpers every component
//! decoder uses ([`node`]).

pub mod node;
pub mod refs;

pub use node::{Build, Component, Node, unsupported_type};
