//! Names on user-defined networks: real sandboxes asking berth's DNS server on their gateway,
//! over UDP and TCP, and busybox resolving through the resolv.conf berth wrote.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use berth_network::netns::Netns;
use berth_network::{EndpointSpec, EtcSpec, Manager, NetworkSpec};
use common::*;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};

fn net(name: &str) -> NetworkSpec {
    NetworkSpec {
        name: name.into(),
        ..Default::default()
    }
}

fn named(names: &[&str]) -> EndpointSpec {
    EndpointSpec {
        names: names.iter().map(|n| n.to_string()).collect(),
        ..Default::default()
    }
}

/// What a resolver said: the addresses or names answered, or the error code.
#[derive(Debug, PartialEq)]
enum Reply {
    Found(Vec<String>),
    Failed(ResponseCode),
}

fn query(name: &str, ty: RecordType) -> Message {
    let mut m = Message::new(4242, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), ty));
    m
}

fn read_reply(bytes: &[u8]) -> Reply {
    let m = Message::from_vec(bytes).expect("a DNS reply");
    assert_eq!(m.metadata.id, 4242, "the reply answers our query");
    if m.metadata.response_code != ResponseCode::NoError {
        return Reply::Failed(m.metadata.response_code);
    }
    Reply::Found(m.answers.iter().map(|r| r.data.to_string()).collect())
}

/// Asks `server` from inside the sandbox `ns`, over UDP.
fn ask(ns: &Path, server: IpAddr, name: &str, ty: RecordType) -> Reply {
    let socket = Netns::open(ns)
        .unwrap()
        .run_in(|| {
            UdpSocket::bind("0.0.0.0:0").map_err(|e| berth_network::Error::Firewall(e.to_string()))
        })
        .unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let q = query(name, ty).to_vec().unwrap();
    socket.send_to(&q, (server, 53)).unwrap();
    let mut buf = [0u8; 1500];
    let n = socket.recv(&mut buf).expect("an answer from the server");
    read_reply(&buf[..n])
}

/// The same over TCP (length-prefixed messages).
fn ask_tcp(ns: &Path, server: IpAddr, name: &str) -> Reply {
    let mut s = Netns::open(ns)
        .unwrap()
        .run_in(|| {
            TcpStream::connect_timeout(&SocketAddr::new(server, 53), Duration::from_secs(5))
                .map_err(|e| berth_network::Error::Firewall(e.to_string()))
        })
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let q = query(name, RecordType::A).to_vec().unwrap();
    s.write_all(&(q.len() as u16).to_be_bytes()).unwrap();
    s.write_all(&q).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).unwrap();
    read_reply(&buf)
}

fn found(ip: IpAddr) -> Reply {
    Reply::Found(vec![ip.to_string()])
}

/// The world's upstream resolver on 127.0.0.1:53 of its host namespace, over UDP and TCP.
fn serve_upstream(host: &Path) {
    let ns = Netns::open(host).unwrap();
    let (socket, listener) = ns
        .run_in(|| {
            let udp = UdpSocket::bind("127.0.0.1:53");
            let tcp = std::net::TcpListener::bind("127.0.0.1:53");
            udp.and_then(|u| Ok((u, tcp?)))
                .map_err(|e| berth_network::Error::Firewall(e.to_string()))
        })
        .expect("bind the upstream resolver");
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = socket.recv_from(&mut buf) {
            if let Some(reply) = upstream_answer(&buf[..n]) {
                let _ = socket.send_to(&reply, peer);
            }
        }
    });
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            let mut len = [0u8; 2];
            if conn.read_exact(&mut len).is_err() {
                continue;
            }
            let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
            if conn.read_exact(&mut q).is_err() {
                continue;
            }
            if let Some(reply) = upstream_answer(&q) {
                let _ = conn.write_all(&(reply.len() as u16).to_be_bytes());
                let _ = conn.write_all(&reply);
            }
        }
    });
}

/// The upstream knows `up.outside.test` (192.0.2.10) and answers NXDOMAIN for the rest.
fn upstream_answer(query: &[u8]) -> Option<Vec<u8>> {
    let q = Message::from_vec(query).ok()?;
    let name = q.queries.first()?.name().clone();
    let mut reply = Message::response(q.metadata.id, OpCode::Query);
    reply.add_queries(q.queries.clone());
    if name.to_ascii() == "up.outside.test." {
        reply.add_answer(Record::from_rdata(
            name,
            30,
            RData::A(A("192.0.2.10".parse().unwrap())),
        ));
    } else {
        reply.metadata.response_code = ResponseCode::NXDomain;
    }
    reply.to_vec().ok()
}

/// Writes a sandbox's /etc files with its id as hostname.
fn etc_of(m: &Manager, sandbox: &str) -> berth_network::EtcFiles {
    let spec = EtcSpec {
        hostname: sandbox.into(),
        ..Default::default()
    };
    m.write_etc(sandbox, &spec)
        .expect("write the sandbox's /etc files")
}

fn gateway(m: &Manager, network: &str) -> IpAddr {
    m.network(network).unwrap().subnets[0].gateway
}

/// busybox ping by name inside the sandbox, with the resolv.conf and hosts berth wrote
/// mounted over /etc's in a private mount namespace: the container's view.
fn ping_by_name(sandbox: &Path, files: &berth_network::EtcFiles, name: &str) -> bool {
    let script = format!(
        "mount --bind {} /etc/resolv.conf && mount --bind {} /etc/hosts && \
         nsenter --net={} busybox ping -c 1 -W 2 {name}",
        files.resolv_conf.display(),
        files.hosts.display(),
        sandbox.display()
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("unshare (util-linux) is installed");
    out.status.success()
}

#[test]
fn containers_find_each_other_by_name_alias_and_short_id() {
    World::new().run(|m, _host| async move {
        m.create_network(&net("front")).await.unwrap();
        m.create_network(&net("back")).await.unwrap();
        let a = m.create_sandbox("a").await.unwrap();
        m.create_sandbox("b").await.unwrap();
        let c = m.create_sandbox("c").await.unwrap();
        let ea = m
            .connect("a", "front", &named(&["a", "web", "aaaaaaaaaaaa"]))
            .await
            .unwrap();
        let eb = m
            .connect("b", "front", &named(&["b", "bbbbbbbbbbbb"]))
            .await
            .unwrap();
        m.connect("c", "back", &named(&["c"])).await.unwrap();
        let gw = gateway(&m, "front");

        assert_eq!(ask(&a.path, gw, "b", RecordType::A), found(ipv4(&eb)));
        assert_eq!(
            ask(&a.path, gw, "BBBBBBBBBBBB.", RecordType::A),
            found(ipv4(&eb))
        );
        assert_eq!(ask(&a.path, gw, "web", RecordType::A), found(ipv4(&ea)));
        assert_eq!(ask_tcp(&a.path, gw, "b"), found(ipv4(&eb)));
        let reverse: Name = ipv4(&eb).into();
        assert_eq!(
            ask(&a.path, gw, &reverse.to_ascii(), RecordType::PTR),
            Reply::Found(vec![PTR(Name::from_ascii("b.").unwrap()).to_string()])
        );
        // c is on another network: its name is not known here, the question goes upstream,
        // and there is no upstream server in this world, so the server says it failed.
        assert_eq!(
            ask(&a.path, gw, "c", RecordType::A),
            Reply::Failed(ResponseCode::ServFail)
        );
        assert_eq!(
            ask(&c.path, gateway(&m, "back"), "a", RecordType::A),
            Reply::Failed(ResponseCode::ServFail)
        );

        let files = etc_of(&m, "a");
        let resolv = std::fs::read_to_string(&files.resolv_conf).unwrap();
        assert_eq!(resolv, format!("nameserver {gw}\nsearch test.example\n"));
        let hosts = std::fs::read_to_string(&files.hosts).unwrap();
        assert!(hosts.contains(&format!("{}\ta\n", ipv4(&ea))), "{hosts}");
        assert!(ping_by_name(&a.path, &files, "b"), "a pings b by name");
        assert!(
            ping_by_name(&a.path, &files, "bbbbbbbbbbbb"),
            "a pings b by short id"
        );
        m
    });
}

#[test]
fn names_follow_live_connects_and_cover_all_of_a_containers_networks() {
    World::new().run(|m, host| async move {
        serve_upstream(&host);
        m.create_network(&net("front")).await.unwrap();
        m.create_network(&net("back")).await.unwrap();
        let a = m.create_sandbox("a").await.unwrap();
        let c = m.create_sandbox("c").await.unwrap();
        let ea = m.connect("a", "front", &named(&["a"])).await.unwrap();
        let ec = m.connect("c", "back", &named(&["c"])).await.unwrap();
        let (front, back) = (gateway(&m, "front"), gateway(&m, "back"));
        assert_eq!(
            ask(&a.path, front, "c", RecordType::A),
            Reply::Failed(ResponseCode::NXDomain),
            "unknown on front: the upstream says so"
        );

        let ec2 = m
            .connect("c", "front", &named(&["c", "cache"]))
            .await
            .unwrap();
        assert_eq!(
            ask(&a.path, front, "cache", RecordType::A),
            found(ipv4(&ec2))
        );
        // c asks on back's gateway for a front name: c is on front too, so it is answered.
        assert_eq!(ask(&c.path, back, "a", RecordType::A), found(ipv4(&ea)));
        // Both of c's addresses answer to "c" on the network asked first.
        assert_eq!(ask(&c.path, back, "c", RecordType::A), found(ipv4(&ec)));

        m.disconnect("c", "front").await.unwrap();
        assert_eq!(
            ask(&a.path, front, "cache", RecordType::A),
            Reply::Failed(ResponseCode::NXDomain)
        );
        assert_eq!(
            ask(&c.path, back, "a", RecordType::A),
            Reply::Failed(ResponseCode::NXDomain)
        );
        m
    });
}

#[test]
fn other_names_go_upstream_except_from_internal_networks() {
    World::new().run(|m, host| async move {
        serve_upstream(&host);
        m.create_network(&net("open")).await.unwrap();
        m.create_network(&NetworkSpec {
            internal: true,
            ..net("sealed")
        })
        .await
        .unwrap();
        let a = m.create_sandbox("a").await.unwrap();
        let s = m.create_sandbox("s").await.unwrap();
        m.connect("a", "open", &named(&["a"])).await.unwrap();
        let es = m.connect("s", "sealed", &named(&["s"])).await.unwrap();
        let up = Reply::Found(vec!["192.0.2.10".into()]);
        assert_eq!(
            ask(
                &a.path,
                gateway(&m, "open"),
                "up.outside.test",
                RecordType::A
            ),
            up
        );
        assert_eq!(ask_tcp(&a.path, gateway(&m, "open"), "up.outside.test"), up);
        let sealed = gateway(&m, "sealed");
        assert_eq!(ask(&s.path, sealed, "s", RecordType::A), found(ipv4(&es)));
        assert_eq!(
            ask(&s.path, sealed, "up.outside.test", RecordType::A),
            Reply::Failed(ResponseCode::ServFail),
            "an internal network has no way out, names included"
        );
        m
    });
}

#[test]
fn the_default_bridge_has_no_names() {
    World::new().run(|m, _host| async move {
        m.create_network(&NetworkSpec {
            options: [(
                "com.docker.network.bridge.default_bridge".to_string(),
                "true".to_string(),
            )]
            .into(),
            ..net("bridge")
        })
        .await
        .unwrap();
        let a = m.create_sandbox("a").await.unwrap();
        m.create_sandbox("b").await.unwrap();
        m.connect("a", "bridge", &named(&["a"])).await.unwrap();
        m.connect("b", "bridge", &named(&["b"])).await.unwrap();
        let files = etc_of(&m, "a");
        // The world's only host resolver is on loopback, out of a container's reach: Docker's
        // public fallback is written instead.
        assert_eq!(
            std::fs::read_to_string(&files.resolv_conf).unwrap(),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\nsearch test.example\n"
        );
        // Nothing listens on the default bridge's gateway: the query is refused at once.
        let socket = Netns::open(&a.path)
            .unwrap()
            .run_in(|| {
                UdpSocket::bind("0.0.0.0:0")
                    .map_err(|e| berth_network::Error::Firewall(e.to_string()))
            })
            .unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        socket.connect((gateway(&m, "bridge"), 53)).unwrap();
        socket
            .send(&query("b", RecordType::A).to_vec().unwrap())
            .unwrap();
        let err = socket.recv(&mut [0u8; 512]).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
        m
    });
}
