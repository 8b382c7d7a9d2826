//! Free loopback ports.

use std::net::TcpListener;

use crate::error::{Error, io};

/// Asks the kernel for a free port on 127.0.0.1. There is a short window in which another
/// process could take it; start-up retries on a bind failure.
pub(crate) fn free() -> Result<u16, Error> {
    let listener = io(TcpListener::bind("127.0.0.1:0"), || "binding a free loopback port".into())?;
    Ok(io(listener.local_addr(), || "reading a bound port".into())?.port())
}
