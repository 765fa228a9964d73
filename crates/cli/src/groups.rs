//! Docker's management commands (`berth container ls`, `berth image rm`, ...): the same
//! commands as the top-level verbs, plus `container prune` and `image prune`.

use clap::Subcommand;

use crate::commands::{container as ctr, image as img, system};
use crate::Cmd;

#[derive(Subcommand, Debug)]
pub enum ContainerCmd {
    /// List containers
    #[command(alias = "ps", alias = "list")]
    Ls(ctr::PsArgs),
    /// Create and run a new container from an image
    #[command(disable_help_flag = true)]
    Run(ctr::RunArgs),
    /// Create a new container
    #[command(disable_help_flag = true)]
    Create(ctr::CreateArgs),
    /// Start one or more stopped containers
    Start(ctr::StartArgs),
    /// Stop one or more running containers
    Stop(ctr::StopArgs),
    /// Restart one or more containers
    Restart(ctr::StopArgs),
    /// Kill one or more running containers
    Kill(ctr::KillArgs),
    /// Remove one or more containers
    #[command(alias = "remove")]
    Rm(ctr::RmArgs),
    /// Fetch the logs of a container
    Logs(ctr::LogsArgs),
    /// Execute a command in a running container
    Exec(ctr::ExecArgs),
    /// Attach to a running container
    Attach(ctr::AttachArgs),
    /// Display detailed information on one or more containers
    Inspect(system::InspectArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(ctr::StatsArgs),
    /// Update configuration of one or more containers
    Update(ctr::UpdateArgs),
    /// Remove all stopped containers
    Prune {
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
        /// Provide filter values (e.g. "until=<timestamp>")
        #[arg(long)]
        filter: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ImageCmd {
    /// List images
    #[command(alias = "list")]
    Ls(img::ImagesArgs),
    /// Download an image from a registry
    Pull(img::PullArgs),
    /// Upload an image to a registry
    Push(img::PullArgs),
    /// Remove one or more images
    #[command(alias = "remove")]
    Rm(img::RmiArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag { source: String, target: String },
    /// Save one or more images to a tar archive
    Save(img::SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(img::LoadArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(img::ImportArgs),
    /// Display detailed information on one or more images
    Inspect(system::InspectArgs),
    /// Remove unused images
    Prune {
        /// Remove all unused images, not just dangling ones
        #[arg(short, long)]
        all: bool,
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
        /// Provide filter values (e.g. "until=<timestamp>")
        #[arg(long)]
        filter: Vec<String>,
    },
}

/// What a management command stands for: a top-level command, or a prune of its own.
pub enum Resolved {
    Cmd(Box<Cmd>),
    PruneContainers {
        force: bool,
        filter: Vec<String>,
    },
    PruneImages {
        all: bool,
        force: bool,
        filter: Vec<String>,
    },
}

impl ContainerCmd {
    pub fn resolve(self) -> Resolved {
        Resolved::Cmd(Box::new(match self {
            ContainerCmd::Ls(a) => Cmd::Ps(a),
            ContainerCmd::Run(a) => Cmd::Run(a),
            ContainerCmd::Create(a) => Cmd::Create(a),
            ContainerCmd::Start(a) => Cmd::Start(a),
            ContainerCmd::Stop(a) => Cmd::Stop(a),
            ContainerCmd::Restart(a) => Cmd::Restart(a),
            ContainerCmd::Kill(a) => Cmd::Kill(a),
            ContainerCmd::Rm(a) => Cmd::Rm(a),
            ContainerCmd::Logs(a) => Cmd::Logs(a),
            ContainerCmd::Exec(a) => Cmd::Exec(a),
            ContainerCmd::Attach(a) => Cmd::Attach(a),
            ContainerCmd::Inspect(a) => Cmd::Inspect(typed(a, "container")),
            ContainerCmd::Stats(a) => Cmd::Stats(a),
            ContainerCmd::Update(a) => Cmd::Update(a),
            ContainerCmd::Prune { force, filter } => {
                return Resolved::PruneContainers { force, filter }
            }
        }))
    }
}

impl ImageCmd {
    pub fn resolve(self) -> Resolved {
        Resolved::Cmd(Box::new(match self {
            ImageCmd::Ls(a) => Cmd::Images(a),
            ImageCmd::Pull(a) => Cmd::Pull(a),
            ImageCmd::Push(a) => Cmd::Push(a),
            ImageCmd::Rm(a) => Cmd::Rmi(a),
            ImageCmd::Tag { source, target } => Cmd::Tag { source, target },
            ImageCmd::Save(a) => Cmd::Save(a),
            ImageCmd::Load(a) => Cmd::Load(a),
            ImageCmd::Import(a) => Cmd::Import(a),
            ImageCmd::Inspect(a) => Cmd::Inspect(typed(a, "image")),
            ImageCmd::Prune { all, force, filter } => {
                return Resolved::PruneImages { all, force, filter }
            }
        }))
    }
}

fn typed(mut a: system::InspectArgs, kind: &str) -> system::InspectArgs {
    a.kind = Some(kind.to_owned());
    a
}
