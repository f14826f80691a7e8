// Package table renders the box-drawn tables of etcdctl's and etcdutl's
// "-w table" output: headers upper-cased and centred, cells right-aligned,
// one space of padding on each side, columns as wide as their widest cell.
// Bytes formats sizes as those tables (and the tools' logs) print them.
//
// Widths count runes, which is exact for the ASCII content the CLIs print
// (endpoints, IDs, versions, sizes); wide East Asian characters would be
// measured as one column.
//
// It is shared by cmd/cairnctl and cmd/cairnutl, whose output must be
// byte-identical to etcdctl's and etcdutl's.
package table
