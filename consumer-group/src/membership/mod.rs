//! Placeholder: the group membership state machine is being written.
