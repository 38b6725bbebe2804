//! Records what a real SV2 miner or proxy sends to an `Sv2ServerSession` that plays a pool
//! deterministically (the fixture key, seed and job of `hashforge_sv2::fuzzing::recording`),
//! so the bytes can be replayed into a fresh session in a test: with the same key, seed and
//! clock the session's handshake reply is byte for byte the same, so the peer's encrypted
//! frames decrypt again.
//!
//! `cargo run -p hashforge-sv2 --example record_peer -- 127.0.0.1:34254 out.json 30`, then
//! point the peer at that address with the authority key it prints. It records for the given
//! seconds after the peer connects.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use hashforge_sv2::fuzzing::recording;
use hashforge_sv2::{Sv2ServerEvent, Sv2ServerSession};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, out, secs] = &args[..] else {
        eprintln!("usage: record_peer HOST:PORT OUT.json SECONDS");
        std::process::exit(2);
    };
    let secs: u64 = secs.parse().expect("SECONDS is a number");
    let authority = recording::authority();
    let listener = TcpListener::bind(listen).expect("listen");
    eprintln!("authority_pubkey {}", authority.public());
    let (mut stream, peer) = listener.accept().expect("accept");
    eprintln!("{peer} connected");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as u32;
    let mut session =
        Sv2ServerSession::new(recording::server_config(), &authority, now, recording::SEED)
            .expect("session");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut chunks: Vec<String> = Vec::new();
    let (mut shares, mut buf, mut out_bytes) = (0, vec![0u8; 65536], Vec::new());
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
            Err(e) => panic!("read: {e}"),
        };
        chunks.push(buf[..n].iter().map(|b| format!("{b:02x}")).collect());
        match session.handle_bytes(&buf[..n]) {
            Ok(events) => {
                for e in events {
                    eprintln!("{e:?}");
                    if matches!(e, Sv2ServerEvent::Share { .. }) {
                        shares += 1;
                    }
                    recording::react(&mut session, e);
                }
            }
            Err(e) => {
                eprintln!("session closed: {e}");
                break;
            }
        }
        out_bytes.clear();
        session.transmit_into(&mut out_bytes);
        stream.write_all(&out_bytes).expect("write");
    }
    let json = format!(
        "{{\n  \"now\": {now},\n  \"shares\": {shares},\n  \"chunks\": [\n{}\n  ]\n}}\n",
        chunks
            .iter()
            .map(|c| format!("    \"{c}\""))
            .collect::<Vec<_>>()
            .join(",\n")
    );
    std::fs::write(out, json).expect("write the recording");
    eprintln!("{} chunks, {shares} shares recorded", chunks.len());
}
