// Command cairn runs one Cairn member.
//
// It accepts etcd's flag names and defaults; every flag --foo-bar may also
// come from the environment as ETCD_FOO_BAR, the command line winning. With
// no arguments it starts a single member named "default" with data in
// ./default.cairn, serving clients on localhost:2379. It logs "ready to serve
// client requests" once it serves, and stops cleanly on SIGINT or SIGTERM.
package main
