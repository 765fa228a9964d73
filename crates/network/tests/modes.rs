//! Network modes: none, host, and container (a second container sharing a sandbox).

mod common;

use std::net::{SocketAddr, TcpListener};

use berth_network::netns::Netns;
use berth_network::{links, parse_mode, EndpointSpec, NetworkSpec, Placement};
use common::*;

#[test]
fn none_host_and_joined_containers_get_the_namespaces_docker_gives() {
    World::new().run(|m, _host| async move {
        // none: a sandbox of its own, loopback only and up.
        assert!(matches!(
            m.placement(&parse_mode("none").unwrap()).unwrap(),
            Placement::Own
        ));
        let lonely = m.create_sandbox("lonely").await.unwrap();
        let lnl = Netns::open(&lonely.path).unwrap().route_handle().unwrap();
        assert_eq!(
            link_names(&Netns::open(&lonely.path).unwrap()).await,
            ["lo"]
        );
        let lo = links::require(&lnl, "lo").await.unwrap();
        assert!(!links::addresses(&lnl, lo.index).await.unwrap().is_empty());

        assert!(matches!(
            m.placement(&parse_mode("host").unwrap()).unwrap(),
            Placement::Host
        ));

        // container:web: the second container enters web's sandbox and sees its interface,
        // its loopback services and its port conflicts.
        m.create_network(&NetworkSpec {
            name: "n".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        let web = m.create_sandbox("web").await.unwrap();
        m.connect("web", "n", &EndpointSpec::default())
            .await
            .unwrap();
        serve_tcp(&web.path, "127.0.0.1:8000".parse().unwrap());
        let Placement::Shared(joined) = m.placement(&parse_mode("container:web").unwrap()).unwrap()
        else {
            panic!("container mode shares a sandbox");
        };
        assert_eq!(joined.path, web.path);
        let shared = Netns::open(&joined.path).unwrap();
        assert_eq!(link_names(&shared).await, ["lo", "eth0"]);
        let said = fetch(&joined.path, "127.0.0.1:8000".parse().unwrap()).unwrap();
        assert!(said.starts_with("hello from web"), "{said}");
        let taken = shared
            .run_in(|| Ok(TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 8000))).map(|_| ())));
        assert_eq!(
            taken.unwrap().unwrap_err().kind(),
            std::io::ErrorKind::AddrInUse,
            "the same ports, so the same conflicts"
        );

        let err = m
            .placement(&parse_mode("container:ghost").unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("start it first"), "{err}");
        m
    });
}
