//! berth's networking, the Container Network Model: **networks** (a driver's kernel objects
//! and an address pool), **sandboxes** (a container's network namespace) and **endpoints**
//! (one interface of a sandbox on a network), with published ports and the firewall.
//!
//! The engine drives it through [`Manager`]; see docs/architecture.md for the map.

pub mod cni;
pub mod dns;
pub mod drivers;
pub mod error;
pub mod etc;
pub mod firewall;
pub mod ipam;
pub mod links;
pub mod manager;
pub mod mode;
pub mod model;
pub mod netns;
pub mod ports;
pub mod store;

pub use error::{Error, Result};
pub use etc::{EtcFiles, EtcSpec};
pub use manager::{Manager, Placement, Settings};
pub use mode::{parse_mode, Mode};
pub use model::{Driver, Endpoint, EndpointSpec, Network, NetworkSpec, Sandbox, SubnetSpec};
pub use ports::{parse_publish, publish_all, PortMapping, Proto};
