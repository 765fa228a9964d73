//! The network crate's errors: each one line that says what went wrong and what to do next.

use std::net::IpAddr;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input from the user: an option, a CIDR, a name.
    #[error("{0}")]
    Invalid(String),
    #[error("network {0} already exists: choose another name, or remove it first")]
    NameTaken(String),
    #[error("no such network: {0} (see `berth network ls`)")]
    NoSuchNetwork(String),
    #[error("no such sandbox: {0}")]
    NoSuchSandbox(String),
    #[error("sandbox {sandbox} is not connected to network {network}")]
    NotConnected { sandbox: String, network: String },
    #[error("sandbox {sandbox} is already connected to network {network}")]
    AlreadyConnected { sandbox: String, network: String },
    #[error("network {network} has {count} active endpoint(s): disconnect or remove its containers first")]
    InUse { network: String, count: usize },
    #[error("port {proto} {ip}:{port} is already published by another container: choose another host port")]
    PortTaken {
        ip: IpAddr,
        port: u16,
        proto: String,
    },
    #[error("CNI plugin {plugin} failed on {command}: {message}")]
    Cni {
        plugin: String,
        command: String,
        message: String,
    },
    #[error("{driver} networks are not available: {why}")]
    Unsupported { driver: String, why: String },
    #[error(transparent)]
    Ipam(#[from] crate::ipam::Error),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {errno}")]
    Sys { what: String, errno: nix::Error },
    #[error("{what}: {message}")]
    Netlink { what: String, message: String },
    #[error("the network store: {0}")]
    Store(#[from] rusqlite::Error),
    #[error("nftables: {0}")]
    Firewall(String),
    #[error("the network store holds unreadable data: {0}")]
    Corrupt(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(what: String, source: std::io::Error) -> Error {
        Error::Io { what, source }
    }

    pub fn sys(what: String, errno: nix::Error) -> Error {
        Error::Sys { what, errno }
    }

    pub fn netlink(what: impl Into<String>, e: rtnetlink::Error) -> Error {
        Error::Netlink {
            what: what.into(),
            message: describe_netlink(&e),
        }
    }

    /// The kernel's errno behind a netlink failure, if there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Netlink { message, .. } => message
                .rsplit_once("errno ")
                .and_then(|(_, n)| n.trim_end_matches(')').parse().ok()),
            _ => None,
        }
    }
}

/// Netlink errors print as a debug dump; this keeps one line with the errno's meaning.
fn describe_netlink(e: &rtnetlink::Error) -> String {
    match e {
        rtnetlink::Error::NetlinkError(msg) => match msg.code {
            Some(code) => {
                let errno = -code.get();
                let text = nix::errno::Errno::from_raw(errno).desc();
                format!("{text} (errno {errno})")
            }
            None => "unknown netlink error".to_string(),
        },
        other => other.to_string(),
    }
}
