//! What a restart or a crash leaves, and how the manager settles it when it opens again.

mod common;

use std::net::SocketAddr;
use std::path::Path;

use berth_network::netns::{self, Netns};
use berth_network::{links, parse_publish, EndpointSpec, Manager, NetworkSpec};
use common::{fetch, ipv4, link_names, serve_tcp, World};

fn paths(host: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = host.parent().unwrap();
    (dir.join("root"), dir.join("run"))
}

fn net(name: &str) -> NetworkSpec {
    NetworkSpec {
        name: name.into(),
        ..Default::default()
    }
}

#[test]
fn a_reopened_manager_finds_everything_as_it_was() {
    World::new().run(|m, host| async move {
        let created = m.create_network(&net("keep")).await.unwrap();
        let s = m.create_sandbox("s").await.unwrap();
        let spec = EndpointSpec {
            ports: parse_publish("127.0.0.1:8080:80").unwrap(),
            ..Default::default()
        };
        let ep = m.connect("s", "keep", &spec).await.unwrap();
        serve_tcp(&s.path, SocketAddr::new(ipv4(&ep), 80));
        drop(m);
        let (root, run) = paths(&host);
        let m = Manager::open(&root, &run).await.unwrap();
        let again = m.network("keep").unwrap();
        assert_eq!(again.id, created.id);
        assert_eq!(again.subnets, created.subnets);
        let eps = m.endpoints_of("s").unwrap();
        assert_eq!(eps.len(), 1);
        assert_eq!(eps[0].addresses, ep.addresses);
        assert!(
            fetch(&host, "127.0.0.1:8080".parse().unwrap()).is_ok(),
            "the port still answers"
        );
        m.create_sandbox("t").await.unwrap();
        let next = m
            .connect("t", "keep", &EndpointSpec::default())
            .await
            .unwrap();
        assert_eq!(
            ipv4(&next).to_string(),
            "172.18.0.3",
            "the first address is still taken"
        );
        m.remove_sandbox("s").await.unwrap();
        m.remove_sandbox("t").await.unwrap();
        m.remove_network("keep").await.unwrap();
        m
    });
}

#[test]
fn after_a_crash_orphans_are_removed_and_live_ones_kept() {
    World::new().run(|m, host| async move {
        let hostns = Netns::open(&host).unwrap();
        m.create_network(&net("n")).await.unwrap();
        let dead = m.create_sandbox("dead").await.unwrap();
        let live = m.create_sandbox("live").await.unwrap();
        let spec = EndpointSpec {
            ports: parse_publish("8081:80").unwrap(),
            ..Default::default()
        };
        let lost = m.connect("dead", "n", &spec).await.unwrap();
        let kept = m
            .connect("live", "n", &EndpointSpec::default())
            .await
            .unwrap();
        drop(m);
        // The daemon is gone; meanwhile one container's namespace vanished, the bridge was
        // deleted (a reboot), and a veth of berth's is left over from a half-made endpoint.
        netns::remove_pinned(&dead.path).unwrap();
        let nl = hostns.route_handle().unwrap();
        let bridge = links::all(&nl)
            .await
            .unwrap()
            .into_iter()
            .find(|l| l.name.starts_with("br-"))
            .unwrap();
        links::delete(&nl, bridge.index).await.unwrap();
        links::add_veth_into(
            &nl,
            "vethstray",
            "stray0",
            hostns.raw_fd(),
            None,
            "berth:ep:feedface",
        )
        .await
        .unwrap();
        let (root, run) = paths(&host);
        let m = Manager::open(&root, &run).await.unwrap();
        assert!(m.sandbox("dead").is_err(), "the dead sandbox is forgotten");
        assert_eq!(
            m.endpoints_of("live").unwrap().len(),
            1,
            "the live one is kept"
        );
        let names = link_names(&hostns).await;
        assert!(
            names.contains(&bridge.name),
            "the bridge is back: {names:?}"
        );
        assert!(
            !names.iter().any(|n| n == "vethstray" || n == "stray0"),
            "the stray is gone: {names:?}"
        );
        assert!(
            !names.contains(&lost.host_ifname.clone().unwrap()),
            "the dead endpoint's veth is gone"
        );
        let again = m.connect("dead2", "n", &EndpointSpec::default()).await;
        assert!(again.is_err(), "no such sandbox");
        m.create_sandbox("new").await.unwrap();
        let reuse = EndpointSpec {
            ports: parse_publish("8081:80").unwrap(),
            ..Default::default()
        };
        let ep = m.connect("new", "n", &reuse).await.unwrap();
        assert_eq!(
            ep.addresses, lost.addresses,
            "the dead endpoint's address was released"
        );
        assert_eq!(ep.ports[0].host_port, 8081, "and its port");
        // The live sandbox's veth is on the re-made bridge again.
        assert!(
            common::ping(&live.path, ipv4(&ep)),
            "the live sandbox reaches a new one"
        );
        assert_eq!(m.endpoints_of("live").unwrap()[0].addresses, kept.addresses);
        m.remove_sandbox("live").await.unwrap();
        m.remove_sandbox("new").await.unwrap();
        m.remove_network("n").await.unwrap();
        m
    });
}
