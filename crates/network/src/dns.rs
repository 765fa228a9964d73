//! Names on user-defined networks: one DNS server, in the style of aardvark-dns, listening on
//! each served network's gateway addresses (UDP and TCP port 53, in the host's namespace).
//!
//! A query is answered from the records of the network whose gateway received it, so a
//! container only resolves its own networks' names; other names are forwarded to the host's
//! resolvers (except from internal networks, which have no way out). The server runs on its
//! own thread with its own runtime, so it answers whatever the caller's runtime is doing.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::error::{Error, Result};

/// The port containers send their queries to.
pub const PORT: u16 = 53;
/// How long a container may cache an answer: short, since containers come and go.
const TTL: u32 = 60;
/// How long an upstream resolver has to answer before the next one is tried.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an idle TCP client is kept.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// The names of one network: every name of every endpoint, the reverse entries, and which
/// sandbox holds each address (so a query can be answered for all of its sender's networks).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Zone {
    /// Internal networks get no forwarding: their containers have no way out.
    pub internal: bool,
    names: HashMap<String, Vec<IpAddr>>,
    reverse: HashMap<IpAddr, String>,
    owners: HashMap<IpAddr, String>,
}

impl Zone {
    pub fn new(internal: bool) -> Zone {
        Zone {
            internal,
            ..Default::default()
        }
    }

    /// Adds a sandbox's endpoint: its first name is the one reverse lookups give.
    pub fn add(&mut self, sandbox: &str, names: &[String], addrs: &[IpAddr]) {
        for name in names {
            let entry = self.names.entry(normalise(name)).or_default();
            for a in addrs {
                if !entry.contains(a) {
                    entry.push(*a);
                }
            }
        }
        for a in addrs {
            self.owners.insert(*a, sandbox.to_string());
            if let Some(first) = names.first() {
                self.reverse.insert(*a, normalise(first));
            }
        }
    }

    fn lookup(&self, name: &str) -> Option<&[IpAddr]> {
        self.names.get(name).map(Vec::as_slice)
    }
}

/// Everything the server answers from: each served network's zone, and which networks each
/// sandbox is on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct View {
    zones: HashMap<String, Zone>,
    sandboxes: HashMap<String, Vec<String>>,
}

impl View {
    pub fn add_network(&mut self, network: &str, internal: bool) {
        self.zones.insert(network.to_string(), Zone::new(internal));
    }

    /// Records a sandbox's endpoint on a served network (added before with `add_network`).
    pub fn add_endpoint(
        &mut self,
        network: &str,
        sandbox: &str,
        names: &[String],
        addrs: &[IpAddr],
    ) {
        if let Some(zone) = self.zones.get_mut(network) {
            zone.add(sandbox, names, addrs);
            self.sandboxes
                .entry(sandbox.to_string())
                .or_default()
                .push(network.to_string());
        }
    }

    /// The zones a query that reached `network`'s gateway from `source` may see: that
    /// network's first, then the other served networks the sender is on (Docker's embedded
    /// resolver answers for all of a container's networks too).
    fn zones_for(&self, network: &str, source: IpAddr) -> Vec<&Zone> {
        let Some(own) = self.zones.get(network) else {
            return Vec::new();
        };
        let mut zones = vec![own];
        let others = own
            .owners
            .get(&source)
            .and_then(|sb| self.sandboxes.get(sb));
        for other in others.into_iter().flatten().filter(|n| *n != network) {
            zones.extend(self.zones.get(other));
        }
        zones
    }
}

/// Names are case-insensitive and may come fully qualified.
fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

type Shared = Arc<RwLock<Arc<View>>>;

enum Command {
    Listen {
        network: String,
        sockets: Vec<(OwnedFd, OwnedFd)>,
    },
    /// Closes a network's listeners, then says so: a network made again right after may
    /// bind the same gateway.
    Close {
        network: String,
        done: std::sync::mpsc::Sender<()>,
    },
}

/// The running server: its zones, and the thread that serves them.
pub struct Dns {
    view: Shared,
    commands: mpsc::UnboundedSender<Command>,
    /// Networks with listeners, and the addresses they listen on.
    listening: RwLock<HashMap<String, Vec<IpAddr>>>,
    port: u16,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Dns {
    /// Starts the server thread; `upstreams` receive the names no network knows.
    pub fn start(upstreams: Vec<SocketAddr>, port: u16) -> Result<Dns> {
        let view: Shared = Arc::default();
        let (commands, rx) = mpsc::unbounded_channel();
        let serving = Server {
            view: view.clone(),
            upstreams: Arc::new(upstreams),
        };
        // The thread is born in the caller's network namespace (the host's), which is where
        // forwarded queries must leave from.
        let thread = std::thread::Builder::new()
            .name("berth-dns".into())
            .spawn(move || serving.run(rx))
            .map_err(|e| Error::io("start the DNS server thread".into(), e))?;
        Ok(Dns {
            view,
            commands,
            listening: RwLock::default(),
            port,
            thread: Some(thread),
        })
    }

    /// Makes the served networks exactly `wanted` (network id → its gateways): opens
    /// listeners for new networks, closes those of networks gone; then answers from `view`.
    pub fn sync(&self, wanted: HashMap<String, Vec<IpAddr>>, view: View) -> Result<()> {
        let mut listening = self.listening.write().unwrap_or_else(|p| p.into_inner());
        for network in listening.keys().cloned().collect::<Vec<_>>() {
            let same = wanted.get(&network) == listening.get(&network);
            if !same {
                listening.remove(&network);
                let (done, closed) = std::sync::mpsc::channel();
                if self.commands.send(Command::Close { network, done }).is_ok() {
                    let _ = closed.recv();
                }
            }
        }
        for (network, gateways) in &wanted {
            if listening.contains_key(network) {
                continue;
            }
            let sockets = gateways
                .iter()
                .map(|gw| bind(SocketAddr::new(*gw, self.port)))
                .collect::<Result<Vec<_>>>()?;
            self.commands
                .send(Command::Listen {
                    network: network.clone(),
                    sockets,
                })
                .map_err(|_| Error::Invalid("the DNS server thread has stopped".into()))?;
            listening.insert(network.clone(), gateways.clone());
        }
        *self.view.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(view);
        Ok(())
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        // Closing the channel ends the server loop; its listeners close with its runtime.
        let (closed, _) = mpsc::unbounded_channel();
        self.commands = closed;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A UDP socket and a TCP listener on `addr`. IP_FREEBIND lets them bind before the kernel
/// has finished bringing the gateway address up (an IPv6 address is tentative at first).
fn bind(addr: SocketAddr) -> Result<(OwnedFd, OwnedFd)> {
    let one = |ty: SockType| -> Result<OwnedFd> {
        let family = match addr {
            SocketAddr::V4(_) => AddressFamily::Inet,
            SocketAddr::V6(_) => AddressFamily::Inet6,
        };
        let flags = SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK;
        let fd = socket::socket(family, ty, flags, None).map_err(|e| bind_error(addr, e))?;
        socket::setsockopt(&fd, sockopt::IpFreebind, &true).map_err(|e| bind_error(addr, e))?;
        socket::setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(|e| bind_error(addr, e))?;
        socket::bind(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &SockaddrStorage::from(addr),
        )
        .map_err(|e| bind_error(addr, e))?;
        if ty == SockType::Stream {
            socket::listen(&fd, socket::Backlog::new(128).expect("a valid backlog"))
                .map_err(|e| bind_error(addr, e))?;
        }
        Ok(fd)
    };
    Ok((one(SockType::Datagram)?, one(SockType::Stream)?))
}

fn bind_error(addr: SocketAddr, e: nix::Error) -> Error {
    Error::Invalid(format!(
        "cannot serve DNS on {addr}: {e}; is another DNS server using port {} on the network's gateway?",
        addr.port()
    ))
}

struct Server {
    view: Shared,
    upstreams: Arc<Vec<SocketAddr>>,
}

impl Server {
    fn run(self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!("the DNS server cannot start its runtime: {e}");
                return;
            }
        };
        rt.block_on(async {
            let mut tasks: HashMap<String, Vec<tokio::task::JoinHandle<()>>> = HashMap::new();
            while let Some(cmd) = commands.recv().await {
                match cmd {
                    Command::Listen { network, sockets } => {
                        let handles = sockets
                            .into_iter()
                            .flat_map(|(udp, tcp)| self.listen(&network, udp, tcp))
                            .collect();
                        tasks.insert(network, handles);
                    }
                    Command::Close { network, done } => {
                        for t in tasks.remove(&network).unwrap_or_default() {
                            t.abort();
                            // Awaiting the aborted task waits until its listener is dropped.
                            let _ = t.await;
                        }
                        let _ = done.send(());
                    }
                }
            }
        });
    }

    fn listen(
        &self,
        network: &str,
        udp: OwnedFd,
        tcp: OwnedFd,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        // SAFETY: both descriptors are open sockets of the right kind that we own, and
        // into_raw_fd hands their ownership to the std types.
        let (udp, tcp) = unsafe {
            (
                std::net::UdpSocket::from_raw_fd(udp.into_raw_fd()),
                std::net::TcpListener::from_raw_fd(tcp.into_raw_fd()),
            )
        };
        let mut handles = Vec::new();
        match tokio::net::UdpSocket::from_std(udp) {
            Ok(s) => handles.push(tokio::spawn(serve_udp(self.context(network), s))),
            Err(e) => tracing::error!("DNS over UDP for network {network}: {e}"),
        }
        match tokio::net::TcpListener::from_std(tcp) {
            Ok(l) => handles.push(tokio::spawn(serve_tcp(self.context(network), l))),
            Err(e) => tracing::error!("DNS over TCP for network {network}: {e}"),
        }
        handles
    }

    fn context(&self, network: &str) -> Context {
        Context {
            network: network.to_string(),
            view: self.view.clone(),
            upstreams: self.upstreams.clone(),
        }
    }
}

/// What one listener needs to answer: which network it serves, and where to forward.
#[derive(Clone)]
struct Context {
    network: String,
    view: Shared,
    upstreams: Arc<Vec<SocketAddr>>,
}

impl Context {
    fn view(&self) -> Arc<View> {
        self.view.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The reply to one query from `source`: from the zones, forwarded, or an error reply;
    /// None when the query cannot even be parsed (there is no id to answer).
    async fn reply(&self, query: &[u8], source: IpAddr, tcp: bool) -> Option<Vec<u8>> {
        let msg = Message::from_vec(query).ok()?;
        let view = self.view();
        let zones = view.zones_for(&self.network, source);
        let internal = zones.first().is_some_and(|z| z.internal);
        match answer(&msg, &zones) {
            Answer::Local(reply) => reply.to_vec().ok(),
            Answer::Forward if internal => refuse(&msg, ResponseCode::ServFail),
            Answer::Forward => match forward(&self.upstreams, query, tcp).await {
                Some(reply) => Some(reply),
                None => refuse(&msg, ResponseCode::ServFail),
            },
        }
    }
}

async fn serve_udp(ctx: Context, socket: tokio::net::UdpSocket) {
    let socket = Arc::new(socket);
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let query = buf[..n].to_vec();
        let (ctx, socket) = (ctx.clone(), socket.clone());
        // Each query on its own task: a slow upstream never holds up local names.
        tokio::spawn(async move {
            if let Some(reply) = ctx.reply(&query, from.ip(), false).await {
                let _ = socket.send_to(&reply, from).await;
            }
        });
    }
}

async fn serve_tcp(ctx: Context, listener: tokio::net::TcpListener) {
    loop {
        let Ok((mut conn, peer)) = listener.accept().await else {
            continue;
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            while let Ok(Ok(query)) = tokio::time::timeout(TCP_IDLE, read_framed(&mut conn)).await {
                let Some(reply) = ctx.reply(&query, peer.ip(), true).await else {
                    return;
                };
                if write_framed(&mut conn, &reply).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// DNS over TCP: each message preceded by its length in two bytes.
async fn read_framed<S: AsyncReadExt + Unpin>(s: &mut S) -> std::io::Result<Vec<u8>> {
    let len = s.read_u16().await?;
    let mut buf = vec![0u8; len as usize];
    s.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_framed<S: AsyncWriteExt + Unpin>(s: &mut S, msg: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(msg.len()).map_err(|_| std::io::ErrorKind::InvalidData)?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(msg);
    s.write_all(&framed).await
}

enum Answer {
    Local(Message),
    Forward,
}

/// Answers a query from the first zone that knows its name (or the address of a PTR).
fn answer(query: &Message, zones: &[&Zone]) -> Answer {
    let Some(q) = query.queries.first() else {
        return Answer::Local(error_reply(query, ResponseCode::FormErr));
    };
    if query.metadata.message_type != MessageType::Query || query.metadata.op_code != OpCode::Query
    {
        return Answer::Local(error_reply(query, ResponseCode::NotImp));
    }
    let name = q.name().clone();
    let records: Vec<Record> = if q.query_type() == RecordType::PTR {
        let Some(target) = name
            .parse_arpa_name()
            .ok()
            .filter(|n| n.prefix_len() == n.max_prefix_len())
            .and_then(|n| zones.iter().find_map(|z| z.reverse.get(&n.addr())))
        else {
            return Answer::Forward;
        };
        let Ok(target) = Name::from_ascii(format!("{target}.")) else {
            return Answer::Forward;
        };
        vec![Record::from_rdata(name, TTL, RData::PTR(PTR(target)))]
    } else {
        let wanted = normalise(&name.to_ascii());
        let Some(addrs) = zones.iter().find_map(|z| z.lookup(&wanted)) else {
            return Answer::Forward;
        };
        addrs
            .iter()
            .filter_map(|a| match (a, q.query_type()) {
                (IpAddr::V4(v4), RecordType::A | RecordType::ANY) => Some(RData::A(A(*v4))),
                (IpAddr::V6(v6), RecordType::AAAA | RecordType::ANY) => {
                    Some(RData::AAAA(AAAA(*v6)))
                }
                _ => None,
            })
            .map(|rdata| Record::from_rdata(name.clone(), TTL, rdata))
            .collect()
    };
    // A known name without records of the asked type is an empty success (NODATA), so the
    // client does not go on to ask the host's resolvers about a container's name.
    let mut reply = error_reply(query, ResponseCode::NoError);
    reply.metadata.authoritative = true;
    reply.add_answers(records);
    Answer::Local(reply)
}

fn error_reply(query: &Message, code: ResponseCode) -> Message {
    let mut reply = Message::error_msg(query.metadata.id, query.metadata.op_code, code);
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.add_queries(query.queries.iter().cloned());
    reply
}

fn refuse(query: &Message, code: ResponseCode) -> Option<Vec<u8>> {
    error_reply(query, code).to_vec().ok()
}

/// Relays the query as it came to each upstream in turn, and the first reply back as it came.
async fn forward(upstreams: &[SocketAddr], query: &[u8], tcp: bool) -> Option<Vec<u8>> {
    for up in upstreams {
        let reply = if tcp {
            tokio::time::timeout(UPSTREAM_TIMEOUT, forward_tcp(*up, query)).await
        } else {
            tokio::time::timeout(UPSTREAM_TIMEOUT, forward_udp(*up, query)).await
        };
        match reply {
            Ok(Ok(r)) => return Some(r),
            Ok(Err(e)) => tracing::debug!("upstream resolver {up}: {e}"),
            Err(_) => tracing::debug!("upstream resolver {up} did not answer in time"),
        }
    }
    None
}

async fn forward_udp(up: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let any: SocketAddr = match up {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let s = tokio::net::UdpSocket::bind(any).await?;
    s.connect(up).await?;
    s.send(query).await?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = s.recv(&mut buf).await?;
        // Only the reply to this query (same id) counts; anything else is stray.
        if n >= 2 && query.len() >= 2 && buf[..2] == query[..2] {
            return Ok(buf[..n].to_vec());
        }
    }
}

async fn forward_tcp(up: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = tokio::net::TcpStream::connect(up).await?;
    write_framed(&mut s, query).await?;
    read_framed(&mut s).await
}

/// The host's resolvers, from its resolv.conf: where names no network knows go.
pub fn upstreams_from(resolv_conf: &str) -> Vec<SocketAddr> {
    nameservers(resolv_conf)
        .into_iter()
        .map(|ip| SocketAddr::new(ip, PORT))
        .collect()
}

/// The `nameserver` lines of a resolv.conf.
pub fn nameservers(resolv_conf: &str) -> Vec<IpAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver"))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;

    fn zone() -> Zone {
        let mut z = Zone::new(false);
        z.add(
            "s1",
            &["web".into(), "Frontend".into(), "0123456789ab".into()],
            &["172.18.0.2".parse().unwrap(), "fd00::2".parse().unwrap()],
        );
        z.add("s2", &["db".into()], &["172.18.0.3".parse().unwrap()]);
        z
    }

    fn query(name: &str, ty: RecordType) -> Message {
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), ty));
        m
    }

    fn local(name: &str, ty: RecordType) -> Vec<RData> {
        match answer(&query(name, ty), &[&zone()]) {
            Answer::Local(m) => m.answers.iter().map(|r| r.data.clone()).collect(),
            Answer::Forward => panic!("{name} was forwarded"),
        }
    }

    #[test]
    fn names_aliases_and_short_ids_answer_case_insensitively() {
        let v4 = RData::A(A("172.18.0.2".parse().unwrap()));
        assert_eq!(local("web.", RecordType::A), vec![v4.clone()]);
        assert_eq!(local("FRONTEND", RecordType::A), vec![v4.clone()]);
        assert_eq!(local("0123456789ab.", RecordType::A), vec![v4]);
        assert_eq!(
            local("web.", RecordType::AAAA),
            vec![RData::AAAA(AAAA("fd00::2".parse().unwrap()))]
        );
        // A known name without an IPv6 address: empty, not forwarded.
        assert!(local("db.", RecordType::AAAA).is_empty());
    }

    #[test]
    fn reverse_lookups_give_the_first_name() {
        let name: Name = IpAddr::from([172, 18, 0, 3]).into();
        let got = local(&name.to_ascii(), RecordType::PTR);
        assert_eq!(got, vec![RData::PTR(PTR(Name::from_ascii("db.").unwrap()))]);
    }

    #[test]
    fn unknown_names_and_addresses_are_forwarded() {
        assert!(matches!(
            answer(&query("example.org.", RecordType::A), &[&zone()]),
            Answer::Forward
        ));
        let name: Name = IpAddr::from([10, 0, 0, 1]).into();
        assert!(matches!(
            answer(&query(&name.to_ascii(), RecordType::PTR), &[&zone()]),
            Answer::Forward
        ));
    }

    #[test]
    fn a_sender_sees_the_names_of_all_its_networks_and_no_others() {
        let mut view = View::default();
        view.add_network("n1", false);
        view.add_network("n2", false);
        view.add_network("n3", false);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        view.add_endpoint("n1", "both", &["both".into()], &[ip("10.1.0.2")]);
        view.add_endpoint("n2", "both", &["both".into()], &[ip("10.2.0.2")]);
        view.add_endpoint("n2", "peer", &["peer".into()], &[ip("10.2.0.3")]);
        view.add_endpoint("n3", "far", &["far".into()], &[ip("10.3.0.2")]);
        view.add_endpoint("unserved", "x", &["x".into()], &[ip("10.9.0.2")]);
        let names = |net: &str, from: &str| {
            let zones = view.zones_for(net, ip(from));
            ["both", "peer", "far", "x"]
                .into_iter()
                .filter(|n| zones.iter().any(|z| z.lookup(n).is_some()))
                .collect::<Vec<_>>()
        };
        assert_eq!(names("n1", "10.1.0.2"), ["both", "peer"]);
        // An unknown sender sees only the network it asked on.
        assert_eq!(names("n1", "10.1.0.99"), ["both"]);
        assert_eq!(names("n3", "10.3.0.2"), ["far"]);
        assert!(names("unserved", "10.9.0.2").is_empty());
    }

    #[test]
    fn nameservers_come_from_resolv_conf() {
        let conf = "# x\nsearch example.org\nnameserver 10.0.0.2\nnameserver  fd00::53 # c\nnameserver bogus\n";
        assert_eq!(
            nameservers(conf),
            vec![
                "10.0.0.2".parse::<IpAddr>().unwrap(),
                "fd00::53".parse().unwrap()
            ]
        );
    }
}
