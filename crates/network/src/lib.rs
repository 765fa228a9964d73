//! berth's networking (the Container Network Model): networks, endpoints, sandboxes, address
//! management and drivers. So far: address management (`ipam`); the rest of issue 4 builds on
//! it.

pub mod ipam;
