//! State that outlives one request and that a fleet may share: the
//! revocation [`Denylist`](denylist::Denylist).

pub mod denylist;
