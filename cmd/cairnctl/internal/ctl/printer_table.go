package ctl

import (
	"io"

	"github.com/cairn-kv/cairn/internal/table"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// tablePrinter draws cluster-level results as tables; key-value results have
// no table form.
type tablePrinter struct {
	unsupported
	w io.Writer
}

func (p *tablePrinter) MemberList(r *clientv3.MemberListResponse) error {
	return table.Render(p.w, memberHeader, memberRows(r))
}

func (p *tablePrinter) EndpointHealth(hs []epHealth) error {
	return table.Render(p.w, healthHeader, healthRows(hs))
}

func (p *tablePrinter) EndpointStatus(l []epStatus) error {
	return table.Render(p.w, statusHeader, statusRows(l))
}

func (p *tablePrinter) EndpointHashKV(l []epHashKV) error {
	return table.Render(p.w, hashKVHeader, hashKVRows(l))
}
