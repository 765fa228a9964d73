//! Macvlan, ipvlan, overlay and bad input, each in its own host namespace.

mod common;

use std::collections::BTreeMap;

use berth_network::model::{OPT_ICC, OPT_MACVLAN_MODE, OPT_PARENT};
use berth_network::netns::Netns;
use berth_network::{EndpointSpec, Error, NetworkSpec, SubnetSpec};
use common::{add_nic, fetch, ipv4, link_names, ping, serve_tcp, World};

fn spec(name: &str, driver: &str, opts: &[(&str, &str)]) -> NetworkSpec {
    NetworkSpec {
        name: name.into(),
        driver: driver.into(),
        options: opts
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        ..Default::default()
    }
}

#[test]
fn macvlan_sandboxes_talk_over_a_parent_interface() {
    World::new().run(|m, host| async move {
        let hostns = Netns::open(&host).unwrap();
        add_nic(&hostns, "testnic0").await;
        let mut s = spec(
            "lan",
            "macvlan",
            &[(OPT_PARENT, "testnic0"), (OPT_MACVLAN_MODE, "bridge")],
        );
        s.subnets = vec![SubnetSpec {
            subnet: "192.0.2.0/24".parse().unwrap(),
            ..Default::default()
        }];
        m.create_network(&s).await.unwrap();
        let a = m.create_sandbox("a").await.unwrap();
        let b = m.create_sandbox("b").await.unwrap();
        m.connect("a", "lan", &EndpointSpec::default())
            .await
            .unwrap();
        let eb = m
            .connect("b", "lan", &EndpointSpec::default())
            .await
            .unwrap();
        assert_eq!(ipv4(&eb).to_string(), "192.0.2.3");
        assert!(
            ping(&a.path, ipv4(&eb)),
            "macvlan siblings in bridge mode reach each other"
        );
        let srv = serve_tcp(&b.path, std::net::SocketAddr::new(ipv4(&eb), 80));
        assert_eq!(fetch(&a.path, srv).unwrap(), "hello from b to 192.0.2.2");
        assert!(
            !link_names(&hostns)
                .await
                .iter()
                .any(|n| n.starts_with("veth")),
            "no veth for macvlan"
        );
        m.remove_sandbox("a").await.unwrap();
        m.remove_sandbox("b").await.unwrap();
        m.remove_network("lan").await.unwrap();
        m
    });
}

#[test]
fn macvlan_private_mode_keeps_siblings_apart() {
    World::new().run(|m, host| async move {
        let hostns = Netns::open(&host).unwrap();
        add_nic(&hostns, "testnic0").await;
        m.create_network(&spec(
            "priv",
            "macvlan",
            &[(OPT_PARENT, "testnic0"), (OPT_MACVLAN_MODE, "private")],
        ))
        .await
        .unwrap();
        let a = m.create_sandbox("a").await.unwrap();
        m.create_sandbox("b").await.unwrap();
        m.connect("a", "priv", &EndpointSpec::default())
            .await
            .unwrap();
        let eb = m
            .connect("b", "priv", &EndpointSpec::default())
            .await
            .unwrap();
        assert!(
            !ping(&a.path, ipv4(&eb)),
            "private mode: no traffic between siblings"
        );
        m.remove_sandbox("a").await.unwrap();
        m.remove_sandbox("b").await.unwrap();
        m.remove_network("priv").await.unwrap();
        m
    });
}

#[test]
fn a_vlan_parent_is_created_with_the_network_and_removed_with_it() {
    World::new().run(|m, host| async move {
        let hostns = Netns::open(&host).unwrap();
        add_nic(&hostns, "testnic0").await;
        let made = m
            .create_network(&spec("v10", "macvlan", &[(OPT_PARENT, "testnic0.10")]))
            .await;
        // This kernel is built without 802.1q (CONFIG_VLAN_8021Q); elsewhere the sub-interface
        // is made with the network and goes with it.
        if kernel_has_8021q() {
            made.unwrap();
            assert!(link_names(&hostns)
                .await
                .contains(&"testnic0.10".to_string()));
            let a = m.create_sandbox("a").await.unwrap();
            m.create_sandbox("b").await.unwrap();
            m.connect("a", "v10", &EndpointSpec::default())
                .await
                .unwrap();
            let eb = m
                .connect("b", "v10", &EndpointSpec::default())
                .await
                .unwrap();
            assert!(ping(&a.path, ipv4(&eb)));
            m.remove_sandbox("a").await.unwrap();
            m.remove_sandbox("b").await.unwrap();
            m.remove_network("v10").await.unwrap();
        } else {
            let err = made.unwrap_err().to_string();
            assert!(err.contains("no 802.1q support"), "{err}");
            assert!(m.networks().unwrap().is_empty(), "nothing recorded");
        }
        assert!(
            !link_names(&hostns)
                .await
                .contains(&"testnic0.10".to_string()),
            "no vlan interface remains"
        );
        let err = m
            .create_network(&spec("v", "macvlan", &[(OPT_PARENT, "nosuch0.10")]))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("nosuch0 does not exist"), "{err}");
        m
    });
}

fn kernel_has_8021q() -> bool {
    std::path::Path::new("/proc/net/vlan").exists()
}

#[test]
fn ipvlan_on_a_kernel_without_it_says_so() {
    World::new().run(|m, host| async move {
        let hostns = Netns::open(&host).unwrap();
        add_nic(&hostns, "testnic0").await;
        let available = std::path::Path::new("/sys/module/ipvlan").exists();
        let made = m
            .create_network(&spec("ipv", "ipvlan", &[(OPT_PARENT, "testnic0")]))
            .await;
        if available {
            // A kernel with ipvlan: it works like macvlan.
            made.unwrap();
            let a = m.create_sandbox("a").await.unwrap();
            m.create_sandbox("b").await.unwrap();
            m.connect("a", "ipv", &EndpointSpec::default())
                .await
                .unwrap();
            let eb = m
                .connect("b", "ipv", &EndpointSpec::default())
                .await
                .unwrap();
            assert!(ping(&a.path, ipv4(&eb)));
            m.remove_sandbox("a").await.unwrap();
            m.remove_sandbox("b").await.unwrap();
            m.remove_network("ipv").await.unwrap();
        } else {
            let err = made.unwrap_err();
            assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
            let text = err.to_string();
            assert!(
                text.contains("no ipvlan support") && text.contains("macvlan"),
                "{text}"
            );
            assert!(m.networks().unwrap().is_empty(), "nothing recorded");
        }
        m
    });
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    World::new().run(|m, host| async move {
        let hostns = Netns::open(&host).unwrap();
        let base = NetworkSpec {
            subnets: vec![SubnetSpec {
                subnet: "10.20.0.0/16".parse().unwrap(),
                ..Default::default()
            }],
            ..spec("base", "bridge", &[])
        };
        m.create_network(&base).await.unwrap();
        let before = link_names(&hostns).await;
        let cases: Vec<(NetworkSpec, &str)> = vec![
            (spec("base", "bridge", &[]), "already exists"),
            (spec("ov", "overlay", &[]), "multi-host"),
            (spec("x", "nosuchdriver", &[]), "unknown network driver"),
            (spec("x", "bridge", &[("bogus", "1")]), "unknown option"),
            (
                spec("x", "bridge", &[(OPT_ICC, "perhaps")]),
                "true or false",
            ),
            (spec("bad name!", "bridge", &[]), "invalid network name"),
            (
                NetworkSpec {
                    subnets: vec![SubnetSpec {
                        subnet: "10.20.5.0/24".parse().unwrap(),
                        ..Default::default()
                    }],
                    ..spec("x", "bridge", &[])
                },
                "overlaps 10.20.0.0/16",
            ),
            (
                NetworkSpec {
                    subnets: vec![SubnetSpec {
                        subnet: "10.30.0.0/24".parse().unwrap(),
                        gateway: Some("10.31.0.1".parse().unwrap()),
                        ..Default::default()
                    }],
                    ..spec("x", "bridge", &[])
                },
                "not a host address",
            ),
            (
                NetworkSpec {
                    ipv6: true,
                    ..spec("x", "bridge", &[])
                },
                "IPv6",
            ),
            (
                spec("x", "macvlan", &[(OPT_PARENT, "nosuch0")]),
                "does not exist",
            ),
        ];
        for (s, expected) in cases {
            let err = m.create_network(&s).await.unwrap_err().to_string();
            assert!(err.contains(expected), "{}: {err}", s.name);
            assert!(!err.contains('\n'), "one line: {err}");
        }
        assert_eq!(
            m.networks().unwrap().len(),
            1,
            "only the first network exists"
        );
        assert_eq!(link_names(&hostns).await, before, "no link was made");
        m.create_sandbox("a").await.unwrap();
        m.connect("a", "base", &EndpointSpec::default())
            .await
            .unwrap();
        let err = m.remove_network("base").await.unwrap_err().to_string();
        assert!(err.contains("1 active endpoint"), "{err}");
        let stray = EndpointSpec {
            addresses: vec!["10.99.0.1".parse().unwrap()],
            ..Default::default()
        };
        m.create_sandbox("b").await.unwrap();
        let err = m
            .connect("b", "base", &stray)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("not in any subnet"), "{err}");
        assert!(m
            .connect("b", "nosuch", &EndpointSpec::default())
            .await
            .is_err());
        assert!(m
            .disconnect("b", "base")
            .await
            .unwrap_err()
            .to_string()
            .contains("not connected"));
        m.remove_sandbox("a").await.unwrap();
        m.remove_sandbox("b").await.unwrap();
        m.remove_network("base").await.unwrap();
        m
    });
}
