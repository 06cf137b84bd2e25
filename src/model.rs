//! The model document layer: YAML with positions, typed documents and templates, parameters,
//! the time grid, series references and the series CSV format. Pure: it reads text, never files.

pub mod doc;
pub mod generate;
pub mod grid;
pub mod params;
pub mod series;
pub mod source;
pub mod template;
pub mod yaml;
