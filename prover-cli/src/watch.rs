//! The watcher: claims and games followed from the chain, the data dir, the model store,
//! and the service loop of `opml watch` (also run by `opml demo`).

pub(crate) mod claims;
pub(crate) mod datadir;
pub(crate) mod models;
pub(crate) mod service;
