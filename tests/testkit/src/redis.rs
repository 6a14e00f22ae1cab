//! A real `redis-server` (Debian's `redis-server` package) on a free loopback port, with a
//! temporary directory and no persistence; killed when dropped, and killable / restartable on
//! the same port mid-test.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::opa::free_port;

/// The `redis-server` to run: `$HELIOS_REDIS_BIN`, else `$HELIOS_TOOLS_BIN/redis-server`, else
/// the one on `PATH`, else `/usr/bin/redis-server` (`scripts/install-tools.sh redis` installs
/// Debian's package and links it into the tools directory).
pub fn redis_server_binary() -> Result<PathBuf, String> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            if let Some(bin) = std::env::var_os("HELIOS_REDIS_BIN") {
                return Ok(PathBuf::from(bin));
            }
            std::env::var_os("HELIOS_TOOLS_BIN")
                .into_iter()
                .chain(std::env::var_os("PATH"))
                .flat_map(|dirs| std::env::split_paths(&dirs).collect::<Vec<_>>())
                .map(|dir| dir.join("redis-server"))
                .chain([PathBuf::from("/usr/bin/redis-server")])
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    "no redis-server: run scripts/install-tools.sh redis (Debian's redis-server) \
                     or set HELIOS_REDIS_BIN"
                        .to_string()
                })
        })
        .clone()
}

/// A running `redis-server`.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts `redis-server` on a free loopback port and waits until it answers `PING`.
    pub fn start() -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut server = RedisServer {
            child: None,
            port: free_port()?,
            dir,
        };
        server.restart()?;
        Ok(server)
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Kills the server (SIGKILL): every key is gone, as after a crash without persistence.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (killing it first if it runs), empty.
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill();
        let bin = redis_server_binary()?;
        let child = Command::new(&bin)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.ping() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        Err(format!("redis-server did not answer on port {}", self.port))
    }

    /// Whether the server answers `PING`.
    pub fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    /// Sends one inline command (e.g. `SET k v`, `FLUSHALL`) and returns the raw reply.
    pub fn command(&self, line: &str) -> Result<String, String> {
        let mut s = TcpStream::connect_timeout(&self.addr(), Duration::from_millis(500))
            .map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .map_err(|e| e.to_string())?;
        s.write_all(format!("{line}\r\n").as_bytes())
            .map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 64 * 1024];
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
