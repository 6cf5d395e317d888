//! What the load generators of `scripts/bench` share: settings from the
//! environment and the release server they start in its own process.

use std::process::Child;

/// `name` from the environment, parsed, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `marketd` process with its data directory, killed when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
    /// Kept so that the directory lives as long as the process.
    #[allow(dead_code)]
    pub dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
