//! Empty: the comparison is in benches/compare.rs.
