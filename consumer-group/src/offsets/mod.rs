//! Placeholder: offset tracking is being written.
