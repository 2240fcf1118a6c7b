//! Filters select exactly the right nodes, through real daemons.

use crate::five_nodes;

#[test]
fn every_filter_kind_selects_exactly_the_right_nodes() {
    let fleet = five_nodes();
    let table: &[(&[&str], &[&str])] = &[
        (&["-W", "country=uk"], &["db2", "web1", "web2"]),
        (&["-F", "country=uk"], &["db2", "web1", "web2"]),
        (&["-F", "country!=uk"], &["db1", "web3"]),
        (&["-F", "country=/^(de|fr)$/"], &["db1", "web3"]),
        (&["-F", "cpus>=8"], &["db1", "db2", "web3"]),
        (&["-F", "cpus>8"], &["db1"]),
        (&["-F", "cpus<4"], &["web2"]),
        (&["-F", "cpus<=4"], &["web1", "web2"]),
        // A float compared with > is strictly greater (Choria evaluated it as >=).
        (&["-F", "load>1.5"], &["db2", "web3"]),
        (&["-F", "load>=1.5"], &["db1", "db2", "web1", "web3"]),
        (&["-F", "os.family=debian"], &["db1", "web1", "web2"]),
        (
            &["-F", "os.family=/^deb/i"],
            &["db1", "db2", "web1", "web2"],
        ),
        (
            &["-F", "os.release.major=12"],
            &["db1", "db2", "web1", "web2", "web3"],
        ),
        (&["-F", "roles=backup"], &["db2"]),
        (&["-C", "role::web"], &["web1", "web2", "web3"]),
        (&["-C", "/^role::d/"], &["db1", "db2"]),
        (&["-C", "role::web", "-C", "webserver"], &["web1", "web2"]),
        (&["-W", "country=uk role::db"], &["db2"]),
        (&["-I", "/^web/"], &["web1", "web2", "web3"]),
        // MCollective missed web1 here: several -I are OR'd.
        (&["-I", "/^db/", "-I", "web1"], &["db1", "db2", "web1"]),
        (&["-A", "rpcutil", "-F", "country=fr"], &["db1"]),
        (
            &["-S", "(country=uk and /web/) or cpus>=16"],
            &["db1", "web1", "web2"],
        ),
        (
            &["-S", "not country=uk and fact('os.family').value=debian"],
            &["db1"],
        ),
        (
            &["-S", "fstat('/etc').type=directory and country=de"],
            &["web3"],
        ),
        (&["-T", "eu"], &["db1", "web3"]),
        (&["-T", "uk", "-F", "cpus>2"], &["db2", "web1"]),
    ];
    for (filter, want) in table {
        let mut args = vec!["rpc", "rpcutil", "ping", "-j"];
        args.extend_from_slice(filter);
        let run = fleet.mco(&args);
        assert_eq!(run.senders(), *want, "{filter:?}\n{}", run.stderr);
        assert_eq!(run.code, Some(0), "{filter:?}: {}", run.stderr);
        let mut find = vec!["find"];
        find.extend_from_slice(filter);
        let found = fleet.mco(&find);
        let lines: Vec<&str> = found.stdout.lines().collect();
        assert_eq!(lines, *want, "find {filter:?}");
    }
    let none = fleet.mco(&["rpc", "rpcutil", "ping", "-F", "country=jp"]);
    assert_eq!(none.code, Some(1));
    assert!(
        none.stderr
            .contains("No request sent, we did not discover any nodes."),
        "{}",
        none.stderr
    );
    let unknown = fleet.mco(&["find", "-S", "nosuch('x').a=1"]);
    assert_eq!(unknown.code, Some(1));
    assert!(
        unknown.stderr.contains("unknown data plugin"),
        "{}",
        unknown.stderr
    );
}
