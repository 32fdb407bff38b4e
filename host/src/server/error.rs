//! Integration stub, replaced by the sources branch.
