// Package table renders the box-drawn tables of etcdctl's "-w table" output:
// headers upper-cased and centred, cells right-aligned, one space of padding
// on each side, columns as wide as their widest cell.
//
// Widths count runes, which is exact for the ASCII content the CLI prints
// (endpoints, IDs, versions, sizes); wide East Asian characters would be
// measured as one column.
package table
