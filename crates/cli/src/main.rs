//! berth: the command line. A client of the daemon's Docker Engine API, with Docker's verbs
//! and flags.

mod client;
mod commands;
mod daemon;
mod format;
mod groups;
mod progress;
mod stdcopy;
mod terminal;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};

use client::{Client, DEFAULT_HOST};
use commands::{container as ctr, image as img, network, system, volume, Exit};

#[derive(Parser, Debug)]
#[command(
    name = "berth",
    version,
    about = "A container engine with Docker's API and commands"
)]
struct Cli {
    /// Daemon socket to connect to (unix:///path)
    #[arg(short = 'H', long, env = "BERTH_HOST", default_value = DEFAULT_HOST, global = true)]
    host: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Cmd {
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
    Rm(ctr::RmArgs),
    /// List containers
    #[command(alias = "ls")]
    Ps(ctr::PsArgs),
    /// Fetch the logs of a container
    Logs(ctr::LogsArgs),
    /// Execute a command in a running container
    Exec(ctr::ExecArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(ctr::AttachArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(commands::copy::CpArgs),
    /// Export a container's filesystem as a tar archive
    Export(commands::copy::ExportArgs),
    /// Return low-level information on Docker objects
    Inspect(system::InspectArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Inspect changes to files or directories on a container's filesystem
    Diff(commands::commit::DiffArgs),
    /// Create a new image from a container's changes
    Commit(commands::commit::CommitArgs),
    /// Rename a container
    Rename { container: String, new_name: String },
    /// Display the running processes of a container
    Top {
        container: String,
        /// Options for ps
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Update configuration of one or more containers
    Update(ctr::UpdateArgs),
    /// Pause all processes within one or more containers
    Pause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Unpause all processes within one or more containers
    Unpause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Display a live stream of container(s) resource usage statistics
    Stats(ctr::StatsArgs),
    /// Download an image from a registry
    Pull(img::PullArgs),
    /// Upload an image to a registry
    Push(img::PullArgs),
    /// List images
    Images(img::ImagesArgs),
    /// Remove one or more images
    Rmi(img::RmiArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag { source: String, target: String },
    /// Save one or more images to a tar archive
    Save(img::SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(img::LoadArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(img::ImportArgs),
    /// Build an image from a Dockerfile
    Build(commands::build::BuildArgs),
    /// Log in to a registry
    Login(img::LoginArgs),
    /// Log out from a registry
    Logout { server: Option<String> },
    /// Manage containers
    #[command(subcommand)]
    Container(groups::ContainerCmd),
    /// Manage images
    #[command(subcommand)]
    Image(groups::ImageCmd),
    /// Manage networks
    #[command(subcommand)]
    Network(network::NetworkCmd),
    /// Manage volumes
    #[command(subcommand)]
    Volume(volume::VolumeCmd),
    /// Manage the daemon's data
    #[command(subcommand)]
    System(system::SystemCmd),
    /// Show the berth version information
    Version {
        /// Format output using a template
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Display system-wide information
    Info {
        /// Format output using a template
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Get real time events from the server
    Events(system::EventsArgs),
    /// Print a shell completion script
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Run the berth daemon (the Docker Engine API on a unix socket; `berth daemon --help`
    /// lists its flags)
    #[command(disable_help_flag = true)]
    Daemon {
        /// The daemon's flags, parsed by its own parser (see daemon.rs)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() {
    berth_runtime::name_service::use_builtin_sources();
    // The daemon keeps SIGPIPE ignored (as Rust starts every program): a client or a shim
    // that goes away mid-write must cost it an EPIPE, never its life.
    // The daemon has flags of its own (its -H is where it listens), parsed before the
    // client's, whose global -H would take them.
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).is_some_and(|a| a == "daemon") {
        run_daemon(&argv[2..]);
        return;
    }
    let cli = Cli::parse();
    if let Cmd::Daemon { args } = &cli.cmd {
        run_daemon(args);
        return;
    }
    default_sigpipe();
    let is_run = matches!(
        cli.cmd,
        Cmd::Run(_)
            | Cmd::Create(_)
            | Cmd::Container(groups::ContainerCmd::Run(_) | groups::ContainerCmd::Create(_))
    );
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| {
            let result = rt.block_on(dispatch(cli));
            // Reads of stdin may still block a thread of the pool: do not wait for them.
            rt.shutdown_background();
            result
        });
    if let Err(e) = result {
        std::process::exit(report(&e, is_run));
    }
}

/// Dies of SIGPIPE when the reader of our output goes away (`berth ps | head`), as command
/// line tools do, instead of failing the next print.
fn default_sigpipe() {
    // SAFETY: called in main before any other thread exists; SIG_DFL is a valid
    // disposition and no Rust handler is replaced.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Prints an error as one line and chooses the exit status (125 for run's own failures).
/// Parses the daemon's flags and runs it, on a multi-threaded runtime of its own.
fn run_daemon(args: &[String]) {
    let args = daemon::DaemonArgs::parse_from(
        std::iter::once("berth daemon").chain(args.iter().map(String::as_str)),
    );
    if let Err(e) = daemon::run(args) {
        std::process::exit(report(&e, false));
    }
}

fn report(e: &anyhow::Error, is_run: bool) -> i32 {
    if let Some(Exit(code)) = e.downcast_ref::<Exit>() {
        return *code;
    }
    eprintln!("{e:#}");
    // As docker: run and create exit 125 for any failure of their own (a daemon error,
    // a failed pull), keeping the container's own statuses for the container.
    if is_run {
        125
    } else {
        1
    }
}

async fn dispatch(cli: Cli) -> Result<()> {
    let client = Client::new(&cli.host)?;
    let cmd = match cli.cmd {
        Cmd::Container(g) => g.resolve(),
        Cmd::Image(g) => g.resolve(),
        other => groups::Resolved::Cmd(Box::new(other)),
    };
    match cmd {
        groups::Resolved::Cmd(cmd) => Box::pin(run_cmd(&client, *cmd)).await,
        groups::Resolved::PruneContainers { force, filter } => {
            commands::prune_containers(&client, force, &filter).await
        }
        groups::Resolved::PruneImages { all, force, filter } => {
            commands::prune_images(&client, all, force, &filter).await
        }
    }
}

async fn run_cmd(c: &Client, cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Run(a) => ctr::run(c, a).await,
        Cmd::Create(a) => ctr::create(c, a).await,
        Cmd::Start(a) => ctr::start(c, a).await,
        Cmd::Stop(a) => ctr::stop(c, a).await,
        Cmd::Restart(a) => ctr::restart(c, a).await,
        Cmd::Kill(a) => ctr::kill(c, a).await,
        Cmd::Rm(a) => ctr::rm(c, a).await,
        Cmd::Ps(a) => ctr::ps(c, a).await,
        Cmd::Logs(a) => ctr::logs(c, a).await,
        Cmd::Exec(a) => ctr::exec(c, a).await,
        Cmd::Attach(a) => ctr::attach(c, a).await,
        Cmd::Cp(a) => commands::copy::cp(c, a).await,
        Cmd::Export(a) => commands::copy::export(c, a).await,
        Cmd::Inspect(a) => system::inspect(c, a).await,
        Cmd::Wait { containers } => ctr::wait(c, &containers).await,
        Cmd::Diff(a) => commands::commit::diff(c, a).await,
        Cmd::Commit(a) => commands::commit::commit(c, a).await,
        Cmd::Rename {
            container,
            new_name,
        } => ctr::rename(c, &container, &new_name).await,
        Cmd::Top { container, ps_args } => ctr::top(c, &container, &ps_args).await,
        Cmd::Update(a) => ctr::update(c, a).await,
        Cmd::Pause { containers } => ctr::simple(c, "pause", &containers).await,
        Cmd::Unpause { containers } => ctr::simple(c, "unpause", &containers).await,
        Cmd::Stats(a) => ctr::stats(c, a).await,
        Cmd::Pull(a) => img::pull(c, a).await,
        Cmd::Push(a) => img::push(c, a).await,
        Cmd::Images(a) => img::images(c, a).await,
        Cmd::Rmi(a) => img::rmi(c, a).await,
        Cmd::Tag { source, target } => img::tag(c, &source, &target).await,
        Cmd::Save(a) => img::save(c, a).await,
        Cmd::Load(a) => img::load(c, a).await,
        Cmd::Import(a) => img::import(c, a).await,
        Cmd::Build(a) => commands::build::build(c, a).await,
        Cmd::Login(a) => img::login(c, a).await,
        Cmd::Logout { server } => img::logout(server),
        Cmd::Network(n) => network::run(c, n).await,
        Cmd::Volume(v) => volume::run(c, v).await,
        Cmd::System(s) => system::system(c, s).await,
        Cmd::Version { format } => system::version(c, format.as_deref()).await,
        Cmd::Info { format } => system::info(c, format.as_deref()).await,
        Cmd::Events(a) => system::events(c, a).await,
        Cmd::Completion { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "berth", &mut std::io::stdout());
            Ok(())
        }
        Cmd::Daemon { .. } => Err(anyhow::anyhow!(
            "the daemon is started before the client's runtime: this is a bug in berth"
        )),
        Cmd::Container(_) | Cmd::Image(_) => Err(anyhow::anyhow!(
            "a management command was not resolved: this is a bug in berth"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_everything_after_the_image() {
        let cli = Cli::try_parse_from([
            "berth", "run", "--rm", "-h", "box", "-e", "A=1", "busybox", "sh", "-c", "exit 3",
        ])
        .unwrap();
        let Cmd::Run(a) = cli.cmd else {
            panic!("not run")
        };
        assert_eq!(a.args, ["busybox", "sh", "-c", "exit 3"]);
        assert!(a.opts.rm);
        assert_eq!(a.opts.hostname.as_deref(), Some("box"));
        let cli = Cli::try_parse_from(["berth", "exec", "-it", "c1", "ls", "-l"]).unwrap();
        let Cmd::Exec(e) = cli.cmd else {
            panic!("not exec")
        };
        assert_eq!(e.args, ["c1", "ls", "-l"]);
        assert!(e.interactive && e.tty);
        let cli = Cli::try_parse_from(["berth", "container", "ls", "-a"]).unwrap();
        assert!(matches!(
            cli.cmd,
            Cmd::Container(groups::ContainerCmd::Ls(_))
        ));
        assert!(Cli::try_parse_from(["berth", "image", "rm", "x"]).is_ok());
        let cli = Cli::try_parse_from([
            "berth",
            "update",
            "--memory",
            "64m",
            "--pids-limit",
            "-1",
            "c1",
        ])
        .unwrap();
        let Cmd::Update(u) = cli.cmd else {
            panic!("not update")
        };
        assert_eq!(u.resources.memory.as_deref(), Some("64m"));
        assert_eq!(u.resources.pids_limit, Some(-1));
        assert_eq!(u.containers, ["c1"]);
        let cli = Cli::try_parse_from(["berth", "container", "update", "--cpus", "1", "c1"]);
        assert!(matches!(
            cli.unwrap().cmd,
            Cmd::Container(groups::ContainerCmd::Update(_))
        ));
    }
}
