//! The command line, flag for flag as runc has it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "berth-runtime",
    version = concat!(env!("CARGO_PKG_VERSION"), "\nspec: 1.2.1"),
    about = "Run OCI containers (runc-compatible command line)"
)]
pub struct Cli {
    /// Directory for the runtime's container state
    #[arg(long, global = true, default_value = "/run/berth-runtime")]
    pub root: PathBuf,
    /// Write log lines to this file instead of stderr
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format: text or json
    #[arg(long, global = true, default_value = "text")]
    pub log_format: String,
    /// Log debug information
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd to manage cgroups (not supported yet)
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a container; its process waits for `start`
    Create(CreateArgs),
    /// Run the created container's process
    Start { id: String },
    /// Create and start a container, and wait for it unless --detach
    Run(RunArgs),
    /// Print the container's state as JSON
    State { id: String },
    /// Send a signal (default SIGTERM) to the container's init, or to all its processes
    Kill {
        #[arg(short, long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container and everything it holds
    Delete {
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// Run a new process inside a running container
    Exec(ExecArgs),
    /// List the processes of a container
    Ps {
        #[arg(short, long, default_value = "table")]
        format: String,
        id: String,
        /// ps(1) options (accepted for runc compatibility; the table shows PID and CMD)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// List containers
    List {
        #[arg(short, long, default_value = "table")]
        format: String,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Freeze every process of the container
    Pause { id: String },
    /// Thaw a paused container
    Resume { id: String },
    /// Change a running container's resource limits
    Update(UpdateArgs),
    /// Write a default config.json in the bundle directory
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        #[arg(long)]
        rootless: bool,
    },
    /// Print what this runtime supports, as OCI features JSON
    Features,
}

#[derive(Args, Debug)]
pub struct CreateFlags {
    /// The bundle directory (config.json and rootfs)
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the container's init pid to this file
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the terminal's master fd
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Use MS_MOVE and chroot instead of pivot_root (for ramdisk roots)
    #[arg(long)]
    pub no_pivot: bool,
    /// Pass this many extra fds (3, 4, ...) to the container
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// Accepted for runc compatibility: no session keyring is created
    #[arg(long)]
    pub no_new_keyring: bool,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    #[command(flatten)]
    pub create: CreateFlags,
    pub id: String,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateFlags,
    /// Return once the container runs instead of waiting for it
    #[arg(short, long)]
    pub detach: bool,
    pub id: String,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// A JSON file with the OCI process to run
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Give the process a terminal
    #[arg(short, long)]
    pub tty: bool,
    #[arg(short, long)]
    pub detach: bool,
    /// Add an environment variable (NAME=value), may repeat
    #[arg(short, long)]
    pub env: Vec<String>,
    /// Working directory in the container
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// uid[:gid] to run as
    #[arg(short, long)]
    pub user: Option<String>,
    /// Extra supplementary gids, may repeat
    #[arg(short = 'g', long)]
    pub additional_gids: Vec<u32>,
    /// Add a capability, may repeat
    #[arg(short, long)]
    pub cap: Vec<String>,
    #[arg(long)]
    pub no_new_privs: bool,
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    pub id: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// A JSON file (or - for stdin) with OCI linux.resources
    #[arg(short, long)]
    pub resources: Option<PathBuf>,
    #[arg(long)]
    pub memory: Option<String>,
    #[arg(long)]
    pub memory_reservation: Option<String>,
    #[arg(long)]
    pub memory_swap: Option<String>,
    #[arg(long)]
    pub cpu_shares: Option<u64>,
    #[arg(long)]
    pub cpu_quota: Option<i64>,
    #[arg(long)]
    pub cpu_period: Option<u64>,
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    #[arg(long)]
    pub pids_limit: Option<i64>,
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    pub id: String,
}
