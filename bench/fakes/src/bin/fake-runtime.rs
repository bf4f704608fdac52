//! A loopback Lambda Runtime API that starts the function itself, for cold-start
//! figures without the harness's own overhead: the clock starts right before the
//! process is spawned, and stops when the function first asks for work (`/next`) and
//! when it posts its first answer.
//!
//! Usage: fake-runtime RUNS EVENT_FILE -- COMMAND [ARGS...]
//! The function inherits this process's environment plus `AWS_LAMBDA_RUNTIME_API`.
//! Prints one JSON line per run: {"exec_to_next_ms", "exec_to_answer_ms",
//! "cpu_to_next_ms", "cpu_to_answer_ms", "answer"}: the CPU the function had used
//! (all its threads, `/proc/<pid>/task/*/schedstat`) when it first asked for work and
//! when it answered; null where /proc cannot tell.
//!
//! Throughput mode: with `FAKE_RUNTIME_INVOCATIONS=N`, each run hands out N events
//! (to as many concurrent `/next` calls as the function makes) and prints
//! {"invocations", "seconds", "per_second"}, timed from the first `/next` to the
//! N-th answer.
//!
//! With `FAKE_RUNTIME_CGROUP=<cgroup dir>` each function starts inside that cgroup
//! (its pid written to `cgroup.procs` between fork and exec), so a CPU quota there
//! applies from its first instruction and this runtime stays outside it. Runs then
//! start 25-65 ms apart (drawn at random): the quota is refilled, and each start
//! falls at its own point of the quota's period, as cold starts do on Lambda.
//!
//! Served mode: `fake-runtime --serve` spawns nothing; it prints its address, then
//! follows commands on stdin, one per line, for a function the harness starts:
//! `wait` prints `ready` once the function has asked for work; `event <JSON>` hands
//! that event out and prints {"wall_ms", "handed_at", "answer"}, timed from the
//! hand-out (`handed_at`, Unix s) to the answer, so that per-request walls carry no
//! interpreter's latency.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

enum Seen {
    Next(Instant, Option<f64>),
    Answer(Instant, String, Option<f64>),
}

/// The pid of the function this runtime spawned last (0: none).
static CHILD: AtomicU32 = AtomicU32::new(0);

/// The CPU time, in ms, that the spawned function's threads have used so far.
fn child_cpu_ms() -> Option<f64> {
    let pid = CHILD.load(Ordering::SeqCst);
    if pid == 0 {
        return None;
    }
    let mut total_ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
        total_ns += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total_ns as f64 / 1e6)
}

/// Reads one HTTP/1.1 request: (method, path, body); None when the peer closed.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(String, String, Vec<u8>)> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((method, path, body))
}

/// Serves one connection of the function: events on `/next`, answers recorded.
fn serve(stream: TcpStream, event: String, seen: mpsc::Sender<Seen>, left: Arc<AtomicUsize>) {
    let _ = stream.set_nodelay(true);
    let mut writer = stream.try_clone().expect("clone the stream");
    let mut reader = BufReader::new(stream);
    while let Some((method, path, body)) = read_request(&mut reader) {
        let now = Instant::now();
        if method == "GET" && path.ends_with("/runtime/invocation/next") {
            let _ = seen.send(Seen::Next(now, child_cpu_ms()));
            if left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_err()
            {
                // No events left: hold the long poll until the run ends.
                std::thread::sleep(Duration::from_secs(3600));
                return;
            }
            let reply = event_reply(&event);
            if writer.write_all(&reply).is_err() {
                return;
            }
        } else {
            accept_answer(&mut writer, &seen, now, &body);
        }
    }
}

/// Records an answer (any request but `/next`) as seen `at`, and accepts it.
fn accept_answer(writer: &mut TcpStream, seen: &mpsc::Sender<Seen>, at: Instant, body: &[u8]) {
    let cpu = child_cpu_ms();
    let _ = seen.send(Seen::Answer(
        at,
        String::from_utf8_lossy(body).into_owned(),
        cpu,
    ));
    let _ = writer.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n");
}

/// Served mode (module docs): the function's `/next` calls wait for the events that
/// arrive on stdin.
fn serve_from_stdin() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind on loopback");
    println!("{}", listener.local_addr().expect("a local address"));
    let (seen_tx, seen_rx) = mpsc::channel();
    let (next_tx, next_rx) = mpsc::channel::<mpsc::SyncSender<String>>();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (seen, next) = (seen_tx.clone(), next_tx.clone());
            std::thread::spawn(move || serve_waiting(stream, seen, next));
        }
    });
    let mut waiting: Option<mpsc::SyncSender<String>> = None;
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin is readable");
        let (command, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        if waiting.is_none() {
            waiting = Some(next_rx.recv().expect("the function asks for work"));
        }
        match command {
            "wait" => println!("ready"),
            "event" => {
                let started = Instant::now();
                let handed_at = unix_now();
                let _ = waiting
                    .take()
                    .expect("a waiting /next")
                    .send(rest.to_owned());
                let (answered, body) = loop {
                    match seen_rx
                        .recv_timeout(Duration::from_secs(120))
                        .expect("the function answers within 120 s")
                    {
                        Seen::Answer(at, body, _) => break (at, body),
                        Seen::Next(..) => {}
                    }
                };
                println!(
                    "{}",
                    serde_json::json!({
                        "wall_ms": answered.duration_since(started).as_secs_f64() * 1000.0,
                        // For lining the request up with fake-aws's trace (Unix s).
                        "handed_at": handed_at,
                        "answer": serde_json::from_str::<serde_json::Value>(&body)
                            .unwrap_or(serde_json::Value::Null),
                    })
                );
            }
            other => panic!("unknown command {other:?}"),
        }
    }
}

/// One connection of the function in served mode: each `/next` waits for its event.
fn serve_waiting(
    stream: TcpStream,
    seen: mpsc::Sender<Seen>,
    next: mpsc::Sender<mpsc::SyncSender<String>>,
) {
    let _ = stream.set_nodelay(true);
    let mut writer = stream.try_clone().expect("clone the stream");
    let mut reader = BufReader::new(stream);
    while let Some((method, path, body)) = read_request(&mut reader) {
        if method == "GET" && path.ends_with("/runtime/invocation/next") {
            let (tx, rx) = mpsc::sync_channel(1);
            if next.send(tx).is_err() {
                return;
            }
            let Ok(event) = rx.recv() else { return };
            if writer.write_all(&event_reply(&event)).is_err() {
                return;
            }
        } else {
            accept_answer(&mut writer, &seen, Instant::now(), &body);
        }
    }
}

/// A `/next` reply carrying `event`, head and body in one write: in two they would
/// meet Nagle and delayed ACKs.
fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

fn event_reply(event: &str) -> Vec<u8> {
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after the epoch")
        + Duration::from_secs(30);
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         lambda-runtime-aws-request-id: 8476a536-e9f4-11e8-9739-2dfe598c3fcd\r\n\
         lambda-runtime-deadline-ms: {}\r\n\
         lambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:123456789012:function:delete-images\r\n\
         lambda-runtime-trace-id: Root=1-5759e988-bd862e3fe1be46a994272793\r\n\r\n",
        event.len(),
        deadline.as_millis()
    );
    let mut reply = head.into_bytes();
    reply.extend_from_slice(event.as_bytes());
    reply
}

/// Moves the child into the cgroup whose `cgroup.procs` is `procs` before it execs:
/// writing "0" there moves the writer. Only `open`, `write` and `close` run between
/// fork and exec (no allocation: another thread may hold the allocator's lock).
fn into_cgroup(command: &mut Command, procs: std::ffi::CString) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure calls async-signal-safe functions only.
    unsafe {
        command.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let written = libc::write(fd, b"0".as_ptr().cast(), 1);
            let error = std::io::Error::last_os_error();
            libc::close(fd);
            if written != 1 {
                return Err(error);
            }
            Ok(())
        });
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--serve") {
        return serve_from_stdin();
    }
    let split = args
        .iter()
        .position(|a| a == "--")
        .expect("usage: fake-runtime RUNS EVENT_FILE -- COMMAND [ARGS...]");
    let runs: usize = args[1].parse().expect("RUNS is a number");
    let event = std::fs::read_to_string(&args[2]).expect("EVENT_FILE is readable");
    let command = &args[split + 1..];
    let invocations: Option<usize> = std::env::var("FAKE_RUNTIME_INVOCATIONS")
        .ok()
        .and_then(|v| v.parse().ok());
    let cgroup_procs = std::env::var("FAKE_RUNTIME_CGROUP").ok().map(|dir| {
        std::ffi::CString::new(format!("{dir}/cgroup.procs")).expect("a path without NUL")
    });
    let mut draw = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(1)
        | 1;
    for _ in 0..runs {
        if cgroup_procs.is_some() {
            // xorshift: any spread will do, only the phase matters.
            draw ^= draw << 13;
            draw ^= draw >> 7;
            draw ^= draw << 17;
            std::thread::sleep(Duration::from_micros(25_000 + draw % 40_000));
        }
        let left = Arc::new(AtomicUsize::new(invocations.unwrap_or(usize::MAX)));
        // A fresh Runtime API per run, as each execution environment has its own.
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind on loopback");
        let address = listener.local_addr().expect("a local address");
        let (seen_tx, seen_rx) = mpsc::channel();
        let accept_event = event.clone();
        let accept_left = left.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (event, seen, left) =
                    (accept_event.clone(), seen_tx.clone(), accept_left.clone());
                std::thread::spawn(move || serve(stream, event, seen, left));
            }
        });
        let mut spawn = Command::new(&command[0]);
        spawn
            .args(&command[1..])
            .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(procs) = &cgroup_procs {
            into_cgroup(&mut spawn, procs.clone());
        }
        let started = Instant::now();
        let mut child = spawn.spawn().expect("spawn the function");
        CHILD.store(child.id(), Ordering::SeqCst);
        if let Some(total) = invocations {
            let mut first_next = None;
            let mut answers = 0;
            let mut last = started;
            while answers < total {
                match seen_rx
                    .recv_timeout(Duration::from_secs(120))
                    .expect("the function answers within 120 s")
                {
                    Seen::Next(at, _) => first_next = first_next.or(Some(at)),
                    Seen::Answer(at, ..) => {
                        answers += 1;
                        last = at;
                    }
                }
            }
            let _ = child.kill();
            let _ = child.wait();
            let seconds = last
                .duration_since(first_next.expect("a /next"))
                .as_secs_f64();
            println!(
                "{}",
                serde_json::json!({
                    "invocations": total,
                    "seconds": seconds,
                    "per_second": total as f64 / seconds,
                })
            );
            continue;
        }
        let mut next = None;
        let mut answer = None;
        while answer.is_none() {
            match seen_rx
                .recv_timeout(Duration::from_secs(120))
                .expect("the function answers within 120 s")
            {
                Seen::Next(at, cpu) => next = next.or(Some((at, cpu))),
                Seen::Answer(at, body, cpu) => answer = Some((at, body, cpu)),
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        let (answered, body, answer_cpu) = answer.expect("an answer");
        let (next, next_cpu) = next.expect("a /next before the answer");
        let ms = |at: Instant| at.duration_since(started).as_secs_f64() * 1000.0;
        println!(
            "{}",
            serde_json::json!({
                "exec_to_next_ms": ms(next),
                "exec_to_answer_ms": ms(answered),
                "cpu_to_next_ms": next_cpu,
                "cpu_to_answer_ms": answer_cpu,
                "answer": serde_json::from_str::<serde_json::Value>(&body)
                    .unwrap_or(serde_json::Value::Null),
            })
        );
    }
}
