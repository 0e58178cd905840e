//! A JSON-RPC proxy in front of anvil whose `eth_getLogs` answers lag behind its state, as
//! a node's may: a log of the newest block is left out of the first answer that would hold
//! it and returned from the next query on. Every other call is forwarded as it is. (anvil
//! itself does this now and then: it commits a mined block's state before it publishes the
//! block's logs.)
//!
//! Plain HTTP/1.1 over `std::net`, one thread per connection: enough for one `opml`
//! process in a test.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

/// The proxy's address and what it has held back.
pub struct LateLogs {
    addr: SocketAddr,
    held_back: Arc<AtomicUsize>,
}

impl LateLogs {
    /// Serve on a free local port, forwarding to `upstream` (`host:port`).
    pub fn start(upstream: SocketAddr) -> LateLogs {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let held_back = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(HashSet::new()));
        let count = held_back.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let (seen, count) = (seen.clone(), count.clone());
                std::thread::spawn(move || serve(conn, upstream, &seen, &count));
            }
        });
        LateLogs { addr, held_back }
    }

    /// The proxy's URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many logs an answer has left out so far.
    pub fn held_back(&self) -> usize {
        self.held_back.load(Ordering::SeqCst)
    }
}

/// Answer the requests of one keep-alive connection until the client closes it.
fn serve(conn: TcpStream, upstream: SocketAddr, seen: &Mutex<HashSet<(String, String)>>, count: &AtomicUsize) {
    let mut out = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    while let Some(body) = read_request(&mut r) {
        let mut answer = post(upstream, &body);
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if request["method"] == "eth_getLogs" {
            let head =
                post(upstream, json!({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"}).to_string().as_bytes());
            let head = head["result"].clone();
            if let Some(logs) = answer["result"].as_array_mut() {
                let mut seen = seen.lock().unwrap();
                logs.retain(|log| {
                    let id = (log["transactionHash"].to_string(), log["logIndex"].to_string());
                    let hold = log["blockNumber"] == head && seen.insert(id);
                    if hold {
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    !hold
                });
            }
        }
        let text = answer.to_string();
        let head =
            format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", text.len());
        if out.write_all(head.as_bytes()).and_then(|_| out.write_all(text.as_bytes())).is_err() {
            return;
        }
    }
}

/// The body of the next request on the connection; `None` once it is closed.
fn read_request(r: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                len = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(body)
}

/// POST `body` to `upstream` on a fresh connection; its JSON answer.
fn post(upstream: SocketAddr, body: &[u8]) -> Value {
    let mut s = TcpStream::connect(upstream).unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {upstream}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: \
         close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP answer") + 4;
    let headers = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    assert!(!headers.contains("transfer-encoding: chunked"), "the proxy reads only sized answers: {headers}");
    serde_json::from_slice(&raw[split..]).unwrap_or_else(|e| panic!("upstream answered no JSON ({e}): {headers}"))
}
