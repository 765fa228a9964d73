//! Priming a migration moves nothing: the process is in the same cgroups afterwards, in
//! every hierarchy.

#[test]
fn priming_leaves_the_process_where_it_was() {
    let before = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    berth_cgroups::prime_migration();
    let after = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    assert_eq!(before, after);
    assert!(!before.is_empty());
}
