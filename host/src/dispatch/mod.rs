//! The dispatcher (being written).
