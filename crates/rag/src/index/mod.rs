//! Vector indexes (being written).
