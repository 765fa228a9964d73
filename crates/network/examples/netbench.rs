//! The network benchmark's driver (bench/network.sh), run inside the benchmark's own network
//! namespace standing in for the host:
//!
//!   netbench setup DIR       a bridge network, sandboxes a and b, b publishing 127.0.0.1:15201
//!                            (iperf3) and 127.0.0.1:15202 (connection rate) to 5201 and 5202;
//!                            prints `a=PATH b=PATH b_ip=IP`
//!   netbench teardown DIR    removes everything it made
//!   netbench join DIR N      N times: sandbox + connect to the bridge, then removal; prints
//!                            the median and p90 join time in ms
//!   netbench accept ADDR     accepts connections and closes them, forever
//!   netbench connect ADDR S  opens and closes connections to ADDR for S seconds; prints the rate

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use berth_network::{parse_publish, EndpointSpec, Manager, NetworkSpec};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_else(|| usage());
    let result = match arg(0).as_str() {
        "setup" => runtime().block_on(setup(Path::new(&arg(1)))),
        "teardown" => runtime().block_on(teardown(Path::new(&arg(1)))),
        "join" => runtime().block_on(join(
            Path::new(&arg(1)),
            arg(2).parse().unwrap_or_else(|_| usage()),
        )),
        "accept" => accept(&arg(1)),
        "connect" => connect(&arg(1), arg(2).parse().unwrap_or_else(|_| usage())),
        _ => usage(),
    };
    if let Err(e) = result {
        eprintln!("netbench: {e}");
        std::process::exit(1);
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: netbench setup|teardown DIR | join DIR N | accept ADDR | connect ADDR SECONDS"
    );
    std::process::exit(2)
}

type Res = Result<(), Box<dyn std::error::Error>>;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

async fn open(dir: &Path) -> Result<Manager, berth_network::Error> {
    Manager::open(&dir.join("root"), &dir.join("run")).await
}

async fn setup(dir: &Path) -> Res {
    let m = open(dir).await?;
    let spec = NetworkSpec {
        name: "bench".into(),
        ..Default::default()
    };
    m.create_network(&spec).await?;
    let a = m.create_sandbox("a").await?;
    let b = m.create_sandbox("b").await?;
    m.connect("a", "bench", &EndpointSpec::default()).await?;
    let mut ports = parse_publish("127.0.0.1:15201:5201")?;
    ports.extend(parse_publish("127.0.0.1:15202:5202")?);
    let eb = m
        .connect(
            "b",
            "bench",
            &EndpointSpec {
                ports,
                ..Default::default()
            },
        )
        .await?;
    println!(
        "a={} b={} b_ip={}",
        a.path.display(),
        b.path.display(),
        eb.addresses[0].addr()
    );
    Ok(())
}

async fn teardown(dir: &Path) -> Res {
    open(dir).await?.reset().await?;
    Ok(())
}

async fn join(dir: &Path, n: usize) -> Res {
    let m = open(dir).await?;
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("j{i}");
        let start = Instant::now();
        m.create_sandbox(&id).await?;
        m.connect(&id, "bench", &EndpointSpec::default()).await?;
        times.push(start.elapsed());
        m.remove_sandbox(&id).await?;
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "median_ms={:.3} p90_ms={:.3} n={n}",
        ms(times[n / 2]),
        ms(times[n * 9 / 10])
    );
    Ok(())
}

fn accept(addr: &str) -> Res {
    let listener = TcpListener::bind(addr)?;
    for conn in listener.incoming() {
        drop(conn?);
    }
    Ok(())
}

/// Opens and resets connections for `seconds`, or until one fails; prints the rate over the
/// time they succeeded and, if one failed, after how many (a proxy that gives up under load
/// shows here, not as a lower rate).
fn connect(addr: &str, seconds: u64) -> Res {
    let addr: SocketAddr = addr.parse()?;
    let until = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let mut count = 0u64;
    let mut failed = "-".to_string();
    while Instant::now() < until {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(s) => {
                // Closing with a reset keeps the client's ports out of TIME_WAIT, so the
                // loop measures the path and not port exhaustion.
                let reset = libc::linger {
                    l_onoff: 1,
                    l_linger: 0,
                };
                nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::Linger, &reset)?;
                count += 1;
            }
            Err(e) => {
                eprintln!("netbench: connection {} to {addr} failed: {e}", count + 1);
                failed = count.to_string();
                break;
            }
        }
    }
    let rate = count as f64 / start.elapsed().as_secs_f64();
    println!("conn_per_s={rate:.0} failed_after={failed}");
    Ok(())
}
