//! Whether a Kafka broker answers, with plain std I/O so that no Mephisto code is involved.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Whether a broker at `addr` (`host:port`) answers ApiVersions v0 with error code 0 (as
/// `scripts/tansu.sh` checks).
pub fn answers_api_versions(addr: &str) -> bool {
    let Some(addr) = addr.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        return false;
    };
    attempt(addr).unwrap_or(false)
}

fn attempt(addr: SocketAddr) -> std::io::Result<bool> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    s.set_read_timeout(Some(Duration::from_secs(1)))?;
    let client = b"mephisto-probe";
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes()); // ApiVersions
    body.extend_from_slice(&0i16.to_be_bytes()); // v0
    body.extend_from_slice(&0x4d45_5048i32.to_be_bytes()); // correlation id
    body.extend_from_slice(&(client.len() as i16).to_be_bytes());
    body.extend_from_slice(client);
    s.write_all(&(body.len() as i32).to_be_bytes())?;
    s.write_all(&body)?;
    let mut size = [0u8; 4];
    s.read_exact(&mut size)?;
    let mut head = [0u8; 6];
    s.read_exact(&mut head)?;
    let corr = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
    let err = i16::from_be_bytes([head[4], head[5]]);
    Ok(corr == 0x4d45_5048 && err == 0)
}
