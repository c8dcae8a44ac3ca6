//! The HTTP edge under abuse, against `varsel api` as a process of its own (so its memory and
//! its open sockets can be read from /proc): large unauthenticated bodies are refused unread,
//! slow clients are cut off, connections stay within their cap, a slow authenticated body gets
//! 408, and a legitimate request is served all the while.

use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use varsel_tests::{Db, TestApp, TestAppOptions, eventually, never_within};

const VARSEL: &str = env!("CARGO_BIN_EXE_varsel");
const MAX_CONNECTIONS: usize = 96;

/// A `kB` line of /proc/<pid>/status, in bytes.
fn proc_status(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    let line =
        text.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("{field} in {text}"));
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// The sockets the process holds open.
fn sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fds")
        .flatten()
        .filter(|e| {
            std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
        })
        .count()
}

async fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    eventually(what, timeout, || std::future::ready(done().then_some(()))).await
}

/// Sends a header announcing a `len`-byte body without credentials, then pushes the body until
/// the server stops taking it; returns the answer's status line and the bytes pushed.
fn unauthenticated_upload(addr: String, len: usize, chunked: bool) -> (String, usize) {
    let mut s = TcpStream::connect(&addr).unwrap();
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_owned()
    } else {
        format!("Content-Length: {len}")
    };
    s.write_all(format!("POST /notifications/api/v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{framing}\r\n\r\n").as_bytes()).unwrap();
    let mut reader = s.try_clone().unwrap();
    let answer = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        let n = reader.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_owned()
    });
    let chunk = vec![b'['; 64 * 1024];
    let mut pushed = 0;
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    while pushed < len {
        let ok = if chunked {
            s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .and_then(|_| s.write_all(&chunk))
                .and_then(|_| s.write_all(b"\r\n"))
        } else {
            s.write_all(&chunk)
        };
        if ok.is_err() {
            break;
        }
        pushed += chunk.len();
    }
    (answer.join().unwrap(), pushed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_large_requests_are_bounded_and_legitimate_ones_served() {
    let mut opts = TestAppOptions::new(Db::Sqlite, "");
    opts.tweak = Box::new(|c| c.run_worker = false);
    let app = TestApp::spawn(opts).await;
    let port = varsel_tests::port();
    let api = app.spawn_role(VARSEL, "api", |c| {
        c.http.listen = format!("127.0.0.1:{port}");
        c.http.max_connections = MAX_CONNECTIONS;
        c.http.header_read_timeout_secs = 2;
        c.http.body_read_timeout_secs = 2;
    });
    let pid = api.0.id();
    let addr = format!("127.0.0.1:{port}");
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    wait_until("varsel api answers", Duration::from_secs(60), || TcpStream::connect(&addr).is_ok())
        .await;
    let legit = || {
        let req = http
            .post(format!("{base}/notifications/api/v1/orders/email"))
            .bearer_auth(app.token("ttd"))
            .json(&json!({"subject": "s", "body": "b", "recipients": [{"emailAddress": "a@example.no"}]}));
        async move {
            let started = Instant::now();
            let status = req.send().await.unwrap().status().as_u16();
            (status, started.elapsed())
        }
    };
    assert_eq!(legit().await.0, 202);
    let rss_before = proc_status(pid, "VmRSS:");

    // Four unauthenticated 60 MB bodies at once, announced and chunked: refused with 401
    // before a byte of them is read, so the server stops taking them.
    let uploads: Vec<_> = (0..4)
        .map(|i| {
            let addr = addr.clone();
            tokio::task::spawn_blocking(move || {
                unauthenticated_upload(addr, 60_000_000, i % 2 == 1)
            })
        })
        .collect();
    for u in uploads {
        let (answer, pushed) = u.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer:?}");
        assert!(
            pushed < 60_000_000 / 2,
            "the server kept reading an unauthenticated body: {pushed} bytes"
        );
    }
    let peak = proc_status(pid, "VmHWM:");
    eprintln!(
        "memory: {} MiB before four unauthenticated 60 MB uploads, peak {} MiB",
        rss_before >> 20,
        peak >> 20
    );
    assert!(
        peak < rss_before + 64 * 1024 * 1024,
        "memory grew from {rss_before} to a peak of {peak} bytes"
    );

    // Slow clients: half a request header, then nothing. They hold at most MAX_CONNECTIONS
    // connections; a legitimate request is still served; each is cut off after the header
    // timeout.
    let slow: Vec<TcpStream> = (0..MAX_CONNECTIONS / 2)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(b"POST /notifications/api/v1/orders HTTP/1.1\r\nHost: x\r\n").unwrap();
            s
        })
        .collect();
    let (status, took) = legit().await;
    assert_eq!(status, 202);
    assert!(took < Duration::from_secs(2), "served at once beside slow clients: {took:?}");
    let mut slow_all: Vec<TcpStream> = slow;
    // More slow clients than the server takes connections: the rest wait in the backlog.
    for _ in 0..MAX_CONNECTIONS {
        let mut s = TcpStream::connect(&addr).unwrap();
        let _ = s.write_all(b"GET /health HTTP/1.1\r\n");
        slow_all.push(s);
    }
    // The server takes up to its cap, and never more while the slow ones are cut off and the
    // backlog takes their places.
    eventually("the server holds its cap of connections", Duration::from_secs(5), || async move {
        let held = sockets(pid);
        if held >= MAX_CONNECTIONS { Ok(held) } else { Err(format!("{held} sockets")) }
    })
    .await;
    never_within(
        "the server held more sockets than its cap",
        Duration::from_secs(1),
        || async move { sockets(pid) > MAX_CONNECTIONS + 24 },
    )
    .await;
    let held = sockets(pid);
    eprintln!(
        "{} slow clients connected, {held} sockets held by the server (cap {MAX_CONNECTIONS} connections)",
        MAX_CONNECTIONS / 2 + MAX_CONNECTIONS
    );
    assert!(
        held <= MAX_CONNECTIONS + 24,
        "{held} sockets open (cap {MAX_CONNECTIONS} connections)"
    );
    // A legitimate request gets a connection once the slow ones are cut off.
    let (status, took) = legit().await;
    assert_eq!(status, 202);
    assert!(took < Duration::from_secs(10), "served once slow clients were cut off: {took:?}");
    let closed = tokio::task::spawn_blocking(move || {
        slow_all
            .into_iter()
            .filter_map(|mut s| {
                s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
                let mut buf = [0u8; 64];
                // Closed by the server: end of stream or a reset, not a timeout.
                match s.read(&mut buf) {
                    Ok(0) => Some(()),
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Some(()),
                    _ => None,
                }
            })
            .count()
    })
    .await
    .unwrap();
    assert_eq!(closed, MAX_CONNECTIONS / 2 + MAX_CONNECTIONS, "every slow client was cut off");
    wait_until("slow connections released", Duration::from_secs(10), || {
        sockets(pid) < MAX_CONNECTIONS / 2
    })
    .await;

    // A client that connects and says nothing is cut off after the header timeout too.
    let addr3 = addr.clone();
    let silent = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr3).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let started = Instant::now();
        let closed = matches!(s.read(&mut [0u8; 16]), Ok(0));
        (closed, started.elapsed())
    });
    // A client that asks for answers and never reads them: cut off once an answer has waited
    // the body timeout to be taken, so it cannot hold a connection by not reading.
    let doc_len = http
        .get(format!("{base}/notifications/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .len();
    let addr4 = addr.clone();
    let nonreader = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr4).unwrap();
        let asks = 200;
        for _ in 0..asks {
            s.write_all(b"GET /notifications/api/v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
        }
        std::thread::sleep(Duration::from_secs(6));
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = Vec::new();
        let ended = match s.read_to_end(&mut got) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        (ended, got.len(), asks * doc_len)
    });
    let (closed, took) = silent.await.unwrap();
    assert!(closed && took < Duration::from_secs(10), "a silent client was cut off after {took:?}");
    let (ended, got, asked) = nonreader.await.unwrap();
    assert!(
        ended && got < asked,
        "a client that does not read was cut off: got {got} of {asked} bytes"
    );

    // An authenticated body that stalls: 408 problem details after the body timeout.
    let token = app.token("ttd");
    let addr2 = addr.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr2).unwrap();
        s.write_all(
            format!(
                "POST /notifications/api/v1/orders/email HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"subject\":"
            )
            .as_bytes(),
        )
        .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let started = Instant::now();
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        (text, started.elapsed())
    })
    .await
    .unwrap();
    assert!(answer.0.starts_with("HTTP/1.1 408"), "{:?}", answer.0);
    assert!(answer.0.contains("application/problem+json"), "{:?}", answer.0);
    assert!(answer.1 < Duration::from_secs(10), "{:?}", answer.1);
    drop(api);
    app.stop().await;
}
