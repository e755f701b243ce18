//! echo-server ADDR PORT [--close-first] [--no-reuseaddr]: accepts connections one at a
//! time, echoes what the client sends (one read), then either closes at once
//! (`--close-first`: this server takes the TIME_WAIT) or waits for the client's end-of-file
//! and closes after it (the client takes it). It sets SO_REUSEADDR unless told not to, as
//! most servers do, so that a restart can bind while its old connections sit in TIME_WAIT.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use socket2::{Domain, Socket, Type};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    let (Some(addr), Some(port)) = (args.first(), args.get(1)) else {
        eprintln!("usage: echo-server ADDR PORT [--close-first] [--no-reuseaddr]");
        std::process::exit(2);
    };
    let at: SocketAddr = match format!("{addr}:{port}")
        .parse()
        .or_else(|_| format!("[{addr}]:{port}").parse())
    {
        Ok(a) => a,
        Err(e) => {
            eprintln!("echo-server: bad address {addr} {port}: {e}");
            std::process::exit(2);
        }
    };
    let socket = Socket::new(Domain::for_address(at), Type::STREAM, None).expect("socket");
    socket
        .set_reuse_address(!flag("--no-reuseaddr"))
        .expect("SO_REUSEADDR");
    if let Err(e) = socket.bind(&at.into()).and_then(|()| socket.listen(128)) {
        eprintln!("echo-server: cannot listen on {at}: {e}");
        std::process::exit(1);
    }
    let listener: std::net::TcpListener = socket.into();
    for conn in listener.incoming().flatten() {
        serve(conn, flag("--close-first"));
    }
}

fn serve(mut conn: TcpStream, close_first: bool) {
    let mut buf = [0u8; 4096];
    if let Ok(n) = conn.read(&mut buf)
        && n > 0
    {
        let _ = conn.write_all(&buf[..n]);
    }
    if !close_first {
        // Until the client's FIN: the client closes first.
        while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
    }
}
