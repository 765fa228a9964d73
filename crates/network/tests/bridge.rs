//! Bridge networks with real sandboxes and real traffic, each test in its own host namespace.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use berth_network::model::{OPT_BRIDGE_NAME, OPT_ICC, OPT_MTU};
use berth_network::netns::{self, Netns};
use berth_network::{links, parse_publish, EndpointSpec, NetworkSpec, SubnetSpec};
use common::{fetch, fetch_udp, ipv4, make_outside, ping, serve_tcp, serve_udp, World};

fn bridge(name: &str, opts: &[(&str, &str)]) -> NetworkSpec {
    NetworkSpec {
        name: name.into(),
        options: opts
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        ..Default::default()
    }
}

fn named(name: &str) -> EndpointSpec {
    EndpointSpec {
        names: vec![name.into()],
        ..Default::default()
    }
}

#[test]
fn sandboxes_on_one_bridge_reach_each_other_and_the_gateway() {
    World::new().run(|m, _host| async move {
        let net = m
            .create_network(&bridge(
                "front",
                &[(OPT_BRIDGE_NAME, "brfront"), (OPT_MTU, "1400")],
            ))
            .await
            .unwrap();
        assert_eq!(net.subnets[0].subnet.to_string(), "172.18.0.0/16");
        let a = m.create_sandbox("a").await.unwrap();
        let b = m.create_sandbox("b").await.unwrap();
        let ea = m.connect("a", "front", &named("a")).await.unwrap();
        let eb = m.connect("b", "front", &named("b")).await.unwrap();
        assert_eq!(ipv4(&ea).to_string(), "172.18.0.2");
        assert_eq!(ipv4(&eb).to_string(), "172.18.0.3");
        assert_eq!(ea.mac, "02:42:ac:12:00:02");
        assert!(ping(&a.path, ipv4(&eb)), "a pings b");
        assert!(
            ping(&b.path, "172.18.0.1".parse().unwrap()),
            "b pings its gateway"
        );
        let server = serve_tcp(&b.path, SocketAddr::new(ipv4(&eb), 8080));
        let said = fetch(&a.path, server).unwrap();
        assert_eq!(said, "hello from b to 172.18.0.2", "no NAT inside a bridge");
        // The sandbox side as the kernel has it: eth0 with the address and the MTU option.
        let inside = Netns::open(&a.path).unwrap().route_handle().unwrap();
        let eth0 = links::require(&inside, "eth0").await.unwrap();
        assert_eq!(eth0.mtu, Some(1400));
        let addrs = links::addresses(&inside, eth0.index).await.unwrap();
        let v4: Vec<_> = addrs.into_iter().filter(|a| a.addr().is_ipv4()).collect();
        assert_eq!(v4, vec!["172.18.0.2/16".parse().unwrap()]);
        m.remove_sandbox("a").await.unwrap();
        m.remove_sandbox("b").await.unwrap();
        assert!(!netns::is_pinned(&a.path));
        m.remove_network("front").await.unwrap();
        m
    });
}

#[test]
fn icc_off_stops_neighbours_but_not_the_outside_or_published_ports() {
    icc_off(true);
}

/// The same where the host does not pass bridged traffic through netfilter: then the bridge's
/// port isolation does the work.
#[test]
fn icc_off_works_without_br_netfilter_too() {
    icc_off(false);
}

fn icc_off(br_netfilter: bool) {
    World::new().run(move |m, host| async move {
        let hostns = Netns::open(&host).unwrap();
        let value = if br_netfilter { "1" } else { "0" };
        hostns
            .write_sysctl("net.bridge.bridge-nf-call-iptables", value)
            .unwrap();
        let outside = make_outside(host.parent().unwrap(), &hostns).await;
        m.create_network(&bridge("quiet", &[(OPT_ICC, "false")]))
            .await
            .unwrap();
        m.create_sandbox("a").await.unwrap();
        let b = m.create_sandbox("b").await.unwrap();
        let ea = m.connect("a", "quiet", &named("a")).await.unwrap();
        let spec = EndpointSpec {
            ports: parse_publish("9090:80").unwrap(),
            ..named("b")
        };
        let eb = m.connect("b", "quiet", &spec).await.unwrap();
        let a = m.sandbox("a").unwrap();
        let served = serve_tcp(&b.path, SocketAddr::new(ipv4(&eb), 80));
        assert!(
            fetch(&a.path, served).is_err(),
            "a must not reach b directly"
        );
        assert!(!ping(&a.path, ipv4(&eb)), "nor by ping");
        assert!(
            ping(&a.path, "172.18.0.1".parse().unwrap()),
            "the gateway answers"
        );
        let via_host = fetch(&a.path, "203.0.113.1:9090".parse().unwrap()).unwrap();
        assert!(
            via_host.starts_with("hello from b"),
            "published ports stay reachable: {via_host}"
        );
        let out = serve_tcp(&outside, "203.0.113.2:7000".parse().unwrap());
        let said = fetch(&a.path, out).unwrap();
        assert_eq!(
            said, "hello from outside-ns to 203.0.113.1",
            "masqueraded to the outside"
        );
        let _ = ea;
        m.remove_sandbox("a").await.unwrap();
        m.remove_sandbox("b").await.unwrap();
        m.remove_network("quiet").await.unwrap();
        netns::remove_pinned(&outside).unwrap();
        m
    });
}

#[test]
fn different_bridges_are_isolated_and_internal_ones_have_no_way_out() {
    World::new().run(|m, host| async move {
        let hostns = Netns::open(&host).unwrap();
        let outside = make_outside(host.parent().unwrap(), &hostns).await;
        m.create_network(&bridge("one", &[])).await.unwrap();
        m.create_network(&bridge("two", &[])).await.unwrap();
        let internal = NetworkSpec {
            internal: true,
            ..bridge("vault", &[])
        };
        m.create_network(&internal).await.unwrap();
        let a = m.create_sandbox("a").await.unwrap();
        let b = m.create_sandbox("b").await.unwrap();
        let v = m.create_sandbox("v").await.unwrap();
        let w = m.create_sandbox("w").await.unwrap();
        m.connect("a", "one", &named("a")).await.unwrap();
        let eb = m.connect("b", "two", &named("b")).await.unwrap();
        m.connect("v", "vault", &named("v")).await.unwrap();
        let ew = m.connect("w", "vault", &named("w")).await.unwrap();
        assert_eq!(
            ipv4(&eb).to_string(),
            "172.19.0.2",
            "the second default pool"
        );
        let served = serve_tcp(&b.path, SocketAddr::new(ipv4(&eb), 80));
        assert!(fetch(&a.path, served).is_err(), "one cannot reach two");
        assert!(!ping(&a.path, ipv4(&eb)));
        let out = serve_tcp(&outside, "203.0.113.2:7001".parse().unwrap());
        assert!(fetch(&a.path, out).is_ok(), "one reaches the outside");
        assert!(
            fetch(&v.path, out).is_err(),
            "an internal network has no way out"
        );
        assert!(ping(&v.path, ipv4(&ew)), "but its members reach each other");
        let _ = w;
        for s in ["a", "b", "v", "w"] {
            m.remove_sandbox(s).await.unwrap();
        }
        for n in ["one", "two", "vault"] {
            m.remove_network(n).await.unwrap();
        }
        netns::remove_pinned(&outside).unwrap();
        m
    });
}

#[test]
fn published_ports_answer_from_the_host_localhost_and_other_containers() {
    World::new().run(|m, host| async move {
        let hostns = Netns::open(&host).unwrap();
        let outside = make_outside(host.parent().unwrap(), &hostns).await;
        m.create_network(&bridge("web", &[])).await.unwrap();
        m.create_network(&bridge("other", &[])).await.unwrap();
        let srv = m.create_sandbox("srv").await.unwrap();
        let mut ports = parse_publish("8080:80").unwrap();
        ports.extend(parse_publish("127.0.0.1:8081:81").unwrap());
        ports.extend(parse_publish("5353:53/udp").unwrap());
        ports.extend(parse_publish("82").unwrap());
        let spec = EndpointSpec {
            ports,
            ..named("srv")
        };
        let ep = m.connect("srv", "web", &spec).await.unwrap();
        let ip = ipv4(&ep);
        serve_tcp(&srv.path, SocketAddr::new(ip, 80));
        serve_tcp(&srv.path, SocketAddr::new(ip, 81));
        serve_tcp(&srv.path, SocketAddr::new(ip, 82));
        serve_udp(&srv.path, SocketAddr::new(ip, 53));
        let random = ep
            .ports
            .iter()
            .find(|p| p.container_port == 82)
            .unwrap()
            .host_port;
        assert!(
            (49153..=60999).contains(&random),
            "a free ephemeral port: {random}"
        );

        let from_localhost = fetch(&host, "127.0.0.1:8080".parse().unwrap()).unwrap();
        assert!(
            from_localhost.starts_with("hello from srv"),
            "{from_localhost}"
        );
        assert!(
            fetch(&host, "127.0.0.1:8081".parse().unwrap()).is_ok(),
            "bound to 127.0.0.1"
        );
        assert!(
            fetch(&host, "203.0.113.1:8081".parse().unwrap()).is_err(),
            "only on 127.0.0.1"
        );
        assert!(fetch(&host, SocketAddr::new("127.0.0.1".parse().unwrap(), random)).is_ok());
        let udp = fetch_udp(&host, "127.0.0.1:5353".parse().unwrap()).unwrap();
        assert!(udp.starts_with("udp to"), "{udp}");
        let from_outside = fetch(&outside, "203.0.113.1:8080".parse().unwrap()).unwrap();
        assert_eq!(
            from_outside, "hello from srv to 203.0.113.2",
            "the client's address is kept"
        );

        let other = m.create_sandbox("other").await.unwrap();
        m.connect("other", "other", &named("other")).await.unwrap();
        assert!(
            fetch(&other.path, "203.0.113.1:8080".parse().unwrap()).is_ok(),
            "from another bridge"
        );
        let hairpin = fetch(&srv.path, "203.0.113.1:8080".parse().unwrap()).unwrap();
        assert_eq!(
            hairpin, "hello from srv to 172.18.0.1",
            "hairpin, masqueraded to the gateway"
        );

        m.remove_sandbox("srv").await.unwrap();
        assert!(
            fetch(&host, "127.0.0.1:8080".parse().unwrap()).is_err(),
            "unpublished on removal"
        );
        m.remove_sandbox("other").await.unwrap();
        m.remove_network("web").await.unwrap();
        m.remove_network("other").await.unwrap();
        netns::remove_pinned(&outside).unwrap();
        m
    });
}

#[test]
fn a_taken_port_is_refused_and_leaves_nothing_half_made() {
    World::new().run(|m, host| async move {
        m.create_network(&bridge("web", &[])).await.unwrap();
        m.create_sandbox("one").await.unwrap();
        m.create_sandbox("two").await.unwrap();
        let spec = EndpointSpec {
            ports: parse_publish("8080:80").unwrap(),
            ..named("one")
        };
        m.connect("one", "web", &spec).await.unwrap();
        let clash = EndpointSpec {
            ports: parse_publish("127.0.0.1:8080:80").unwrap(),
            ..named("two")
        };
        let err = m
            .connect("two", "web", &clash)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("8080") && err.contains("already published"),
            "{err}"
        );
        assert!(
            m.endpoints_of("two").unwrap().is_empty(),
            "no endpoint recorded"
        );
        let hostns = Netns::open(&host).unwrap();
        let nl = hostns.route_handle().unwrap();
        let veths = links::all(&nl)
            .await
            .unwrap()
            .into_iter()
            .filter(|l| l.name.starts_with("veth"))
            .count();
        assert_eq!(veths, 1, "only the first container's veth");
        // A host process holding the port is a clash too.
        let held = Netns::open(&host)
            .unwrap()
            .run_in(|| Ok(std::net::TcpListener::bind("127.0.0.1:0").unwrap()))
            .unwrap();
        let port = held.local_addr().unwrap().port();
        let busy = EndpointSpec {
            ports: parse_publish(&format!("127.0.0.1:{port}:80")).unwrap(),
            ..named("two")
        };
        assert!(m.connect("two", "web", &busy).await.is_err());
        // The address the failed attempts would have had is still free.
        let ok = m.connect("two", "web", &named("two")).await.unwrap();
        assert_eq!(ipv4(&ok).to_string(), "172.18.0.3");
        m.remove_sandbox("one").await.unwrap();
        m.remove_sandbox("two").await.unwrap();
        m.remove_network("web").await.unwrap();
        m
    });
}

#[test]
fn a_running_sandbox_is_connected_and_disconnected_live() {
    World::new().run(|m, _host| async move {
        m.create_network(&bridge("first", &[])).await.unwrap();
        let second = NetworkSpec {
            subnets: vec![SubnetSpec {
                subnet: "10.77.0.0/24".parse().unwrap(),
                range: Some("10.77.0.128/25".parse().unwrap()),
                gateway: Some("10.77.0.254".parse().unwrap()),
            }],
            ..bridge("second", &[])
        };
        m.create_network(&second).await.unwrap();
        let a = m.create_sandbox("a").await.unwrap();
        m.create_sandbox("b").await.unwrap();
        m.connect("a", "first", &named("a")).await.unwrap();
        let fixed = EndpointSpec {
            addresses: vec!["10.77.0.9".parse().unwrap()],
            ..named("b")
        };
        let eb = m.connect("b", "second", &fixed).await.unwrap();
        assert_eq!(ipv4(&eb).to_string(), "10.77.0.9", "a static address");
        assert!(!ping(&a.path, ipv4(&eb)));
        let ea2 = m.connect("a", "second", &named("a")).await.unwrap();
        assert_eq!(ea2.ifname, "eth1");
        assert_eq!(ipv4(&ea2).to_string(), "10.77.0.129", "from the range");
        assert!(ping(&a.path, ipv4(&eb)), "reachable once connected");
        m.disconnect("a", "second").await.unwrap();
        assert!(!ping(&a.path, ipv4(&eb)), "unreachable once disconnected");
        let inside = Netns::open(&a.path).unwrap().route_handle().unwrap();
        assert!(
            links::by_name(&inside, "eth1").await.unwrap().is_none(),
            "eth1 is gone"
        );
        let again = m.connect("a", "second", &named("a")).await.unwrap();
        assert_eq!(
            ipv4(&again).to_string(),
            "10.77.0.129",
            "the address was released"
        );
        let err = m
            .connect("a", "second", &named("a"))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("already connected"), "{err}");
        // The first network carried the default route; once it goes, the second takes it.
        let first_gw = m.network("first").unwrap().subnets[0].gateway;
        assert_eq!(links::default_gateways(&inside).await.unwrap(), [first_gw]);
        m.disconnect("a", "first").await.unwrap();
        assert_eq!(
            links::default_gateways(&inside).await.unwrap(),
            ["10.77.0.254".parse::<std::net::IpAddr>().unwrap()],
            "the default route moved to the remaining network"
        );
        m.remove_sandbox("a").await.unwrap();
        m.remove_sandbox("b").await.unwrap();
        m.remove_network("first").await.unwrap();
        m.remove_network("second").await.unwrap();
        m
    });
}
