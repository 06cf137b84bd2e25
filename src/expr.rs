//! The expression language (§5): syntax tree, lexer and parser with located errors.
//!
//! Parsing is pure and never panics; evaluation lives in the engine, which compiles the tree
//! against resolved series.

pub mod ast;
pub mod parser;

pub use ast::{Expr, ExprKind, ReadKind, Span};
pub use parser::{ExprError, Mode, parse};
