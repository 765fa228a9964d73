//! berth's daemon side of the Docker Engine API: the routes that turn Docker's requests into
//! engine calls, in the exact shapes of moby's api/swagger.yaml (types from `bollard-stubs`),
//! served on a unix socket. Real Docker clients (the docker CLI, docker-py, bollard) talk to
//! it unchanged.

mod archive;
mod build;
mod changes;
mod commit;
mod containers;
mod convert;
mod error;
mod images;
mod logging;
mod networks;
mod reload;
mod server;
mod settings;
mod stats;
mod streams;
mod system;
mod tls;
mod volumes;

pub use berth_engine::runtimes::parse_add_runtime;
pub use berth_engine::LogConfig;
pub use berth_engine::RuntimeCommand;
pub use error::ApiError;
pub use logging::Logging;
pub use server::{serve, Options};
pub use tls::TcpOptions;
