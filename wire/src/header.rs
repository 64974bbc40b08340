//! Placeholder: filled by the wire work in progress.
